"""Layers shared by the transformer families (ViT, Swin, PVT, MiT).

Platform-tuned computation lives in `vision.kernels`; the modules here own
parameters and call it.

Conventions: NHWC / [B, tokens, C] inputs; parameters are float32
(`param_dtype`), computation runs in `dtype`; randomness (dropout, drop path)
comes from the 'dropout' rng stream and only when `deterministic=False`.
"""
from __future__ import annotations

from typing import Any, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from vision import kernels

Dtype = Any

# torch.nn.Linear / Conv2d initialise with trunc_normal(0.02) in the reference
# ViT/Swin/PVT/SegFormer code; biases start at zero, LayerNorm at (1, 0).
dense_init = nn.initializers.truncated_normal(stddev=0.02)


class Dense(nn.Module):
  """y = x·W + b over the last axis (`kernels.dense`).

  Parameters and names as `nn.Dense` (`kernel` [C_in, C_out], `bias`
  [C_out], float32, computation in `dtype`), so checkpoints and converters
  are unchanged.
  """
  features: int
  use_bias: bool = True
  dtype: Dtype = jnp.float32
  kernel_init: Any = nn.initializers.lecun_normal()
  bias_init: Any = nn.initializers.zeros

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    kernel = self.param('kernel', self.kernel_init, (x.shape[-1], self.features), jnp.float32)
    y = kernels.dense(x.astype(self.dtype), kernel.astype(self.dtype))
    if self.use_bias:
      y = y + self.param('bias', self.bias_init, (self.features,), jnp.float32).astype(self.dtype)
    return y


class PatchEmbed(nn.Module):
  """Non-overlapping P×P patches → D (`kernels.patchify`): [B, H, W, C] → [B, ⌊H/P⌋, ⌊W/P⌋, D].

  Parameters as a stride-P 'VALID' `nn.Conv` (`kernel` [P, P, C, D] HWIO,
  `bias` [D], float32), so checkpoints map one to one. ViT's patch
  embedding, Swin's and PVT's patch projections, and the spatial reduction
  of PVT/MiT attention.
  """
  embed_dim: int
  patch_size: int
  dtype: Dtype = jnp.float32
  kernel_init: Any = nn.initializers.lecun_normal()

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    p = self.patch_size
    kernel = self.param('kernel', self.kernel_init, (p, p, x.shape[-1], self.embed_dim),
                        jnp.float32)
    bias = self.param('bias', nn.initializers.zeros, (self.embed_dim,), jnp.float32)
    y = kernels.patchify(x.astype(self.dtype), kernel.astype(self.dtype))
    return y + bias.astype(self.dtype)


class DepthwiseConv(nn.Module):
  """`kernels.depthwise_conv` + bias, with `nn.Conv(feature_group_count=C)`'s parameters.

  `kernel` [k, k, 1, C], `bias` [C], float32; computation in `dtype`.
  """
  kernel_size: int = 3
  dtype: Dtype = jnp.float32
  kernel_init: Any = nn.initializers.lecun_normal()
  bias_init: Any = nn.initializers.zeros

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    c, k = x.shape[-1], self.kernel_size
    kernel = self.param('kernel', self.kernel_init, (k, k, 1, c), jnp.float32)
    bias = self.param('bias', self.bias_init, (c,), jnp.float32)
    y = kernels.depthwise_conv(x.astype(self.dtype), kernel.astype(self.dtype))
    return y + bias.astype(self.dtype)


def drop_path(module: nn.Module, x: jax.Array, rate: Any, deterministic: bool) -> jax.Array:
  """Stochastic depth (Huang et al. 2016): y = x·b/(1 − r), b ~ Bernoulli(1 − r) per example.

  The expected output equals x. `rate` may be a traced scalar (one entry of a
  scanned per-block schedule); `module` supplies the 'dropout' rng.
  """
  if deterministic or (isinstance(rate, (int, float)) and rate == 0.0):
    return x
  keep = 1.0 - jnp.asarray(rate, jnp.float32)
  mask = jax.random.bernoulli(module.make_rng('dropout'), keep,
                              (x.shape[0],) + (1,) * (x.ndim - 1))
  return jnp.where(mask, x / keep.astype(x.dtype), jnp.zeros((), x.dtype))


def drop_path_rates(rate: float, depths: Sequence[int]) -> list[list[float]]:
  """Stochastic-depth rate of every block: linspace(0, rate, Σ depths), split by stage.

  The rate grows linearly with the block's index over the whole network
  (Huang et al. 2016; the ViT, Swin, PVT and SegFormer reference code). A
  single-stage model (ViT) passes `depths=(depth,)`.
  """
  flat = np.linspace(0.0, rate, int(sum(depths))).tolist()
  out, start = [], 0
  for d in depths:
    out.append(flat[start:start + d])
    start += d
  return out


def apply_blocks(block_cls: type[nn.Module], kwargs: dict[str, Any], x: jax.Array,
                 per_block: Sequence[Any], name: str, scan: bool = False,
                 remat: bool = False,
                 last_kwargs: Optional[dict[str, Any]] = None) -> jax.Array:
  """x ← block_ℓ(x, a_ℓ) for ℓ = 0 … L−1 (L = len(per_block)); call inside a compact method.

  `block_cls(**kwargs)(x, a)` must return `(x, None)`; a_ℓ = `per_block[ℓ]` is
  the block's own argument (its drop-path rate, or a tuple of Python scalars
  such as Swin's (rate, shifted)). Unrolled, block ℓ's variables are
  `{name}_{ℓ}` and a_ℓ stays a Python value; with `scan` the blocks run as one
  `nn.scan` whose variables are `name` with a leading [L] axis (one compiled
  block body instead of L, so compile time stays flat in depth;
  `vision.load_pretrained` stacks unrolled checkpoints into this layout) and
  a_ℓ arrives traced (floats as float32, bools as bool). `remat` recomputes
  each block's activations in the backward pass (`nn.remat`), trading compute
  for memory. XLA:CPU runs convolutions inside a loop body far slower than at
  top level (jax-ml/jax#12868): with the portable kernels, scanning blocks
  that convolve (PVT's and MiT's spatial reduction, MiT's depthwise conv) is
  for GPU/TPU; the tuned CPU kernels spell those convolutions as matmuls and
  shifted adds. `last_kwargs` update block L−1's kwargs where the blocks are
  unrolled; a scanned stack shares one definition and ignores them, so they
  may narrow what the last block computes (ViT's class-token pooling: its
  first row only) but not change the rows it returns.
  """
  if scan:
    if remat:
      block_cls = nn.remat(block_cls, prevent_cse=False)
    scanned = nn.scan(block_cls, variable_axes={'params': 0},
                      split_rngs={'params': True, 'dropout': True},
                      in_axes=0, length=len(per_block))
    xs = jax.tree.map(lambda *v: jnp.asarray(np.asarray(v), _scan_dtype(v[0])), *per_block)
    x, _ = scanned(**kwargs, name=name)(x, xs)
    return x
  if remat:
    block_cls = nn.remat(block_cls, static_argnums=(2,))
  for i, a in enumerate(per_block):
    own = {**kwargs, **last_kwargs} if last_kwargs and i == len(per_block) - 1 else kwargs
    x, _ = block_cls(**own, name=f'{name}_{i}')(x, a)
  return x


def _scan_dtype(value: Any) -> Any:
  return jnp.bool_ if isinstance(value, (bool, np.bool_)) else jnp.float32


def float_logits(x: jax.Array) -> jax.Array:
  """Logits in float32 whatever the compute dtype (float64 kept, for the gradient checks)."""
  return x.astype(jnp.promote_types(x.dtype, jnp.float32))


class Mlp(nn.Module):
  """Transformer MLP: fc1 → exact GELU → dropout → fc2 → dropout."""
  hidden_dim: int
  out_dim: Optional[int] = None
  drop_rate: float = 0.0
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, deterministic: bool = True) -> jax.Array:
    out_dim = self.out_dim or x.shape[-1]
    x = Dense(self.hidden_dim, dtype=self.dtype, kernel_init=dense_init, name='fc1')(x)
    x = kernels.gelu(x)
    x = nn.Dropout(self.drop_rate)(x, deterministic=deterministic)
    x = Dense(out_dim, dtype=self.dtype, kernel_init=dense_init, name='fc2')(x)
    return nn.Dropout(self.drop_rate)(x, deterministic=deterministic)


def to_2tuple(size: Any, name: str = 'img_size') -> tuple[int, int]:
  """`size` as (height, width); an int means a square. ValueError if not positive."""
  pair = (size, size) if isinstance(size, int) else tuple(size)
  if len(pair) != 2 or not all(isinstance(s, int) and s > 0 for s in pair):
    raise ValueError(f'{name} must be a positive int or (height, width) pair, got {size!r}.')
  return pair


def check_image_shape(x: Any, img_size: Any, in_chans: int, model: str) -> None:
  """Raises a ValueError unless `x` is a [B, H, W, in_chans] batch at img_size.

  Runs on static shapes, so a misfit fails at trace time, before compilation.
  """
  size = to_2tuple(img_size)
  if x.ndim != 4 or tuple(x.shape[1:]) != (*size, in_chans):
    raise ValueError(
        f'{model} expects images of shape [batch, {size[0]}, {size[1]}, {in_chans}] '
        f'(NHWC, img_size={img_size!r}, in_chans={in_chans}), got {tuple(x.shape)}. '
        f'Create the model with img_size={tuple(x.shape[1:3]) if x.ndim == 4 else "..."}'
        f'{f", in_chans={x.shape[-1]}" if x.ndim == 4 else ""} to fit these images.')
