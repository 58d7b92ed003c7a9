"""Layers shared by the transformer families (ViT, Swin, PVT, MiT).

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

Dtype = Any

# torch.nn.Linear / Conv2d initialise with trunc_normal(0.02) in the reference
# ViT/Swin/PVT/SegFormer code; biases start at zero, LayerNorm at (1, 0).
dense_init = nn.initializers.truncated_normal(stddev=0.02)


@jax.custom_jvp
def gelu(x: jax.Array) -> jax.Array:
  """Exact GELU (Hendrycks & Gimpel 2016), x·Φ(x) with Φ(x) = ½(1 + erf(x/√2)).

  Spelled with erf as torch and timm compute it (flax's default is the tanh
  approximation, `jax.nn.gelu`'s exact form uses erfc). The derivative is
  given in closed form, dGELU/dx = Φ(x) + x·φ(x) with φ the normal density,
  so the backward pass is one fused elementwise op instead of erf's
  autodiff graph.
  """
  return x * _normal_cdf(x)


def _normal_cdf(x: jax.Array) -> jax.Array:
  return 0.5 * (1.0 + jax.lax.erf(x * np.sqrt(0.5).astype(x.dtype)))


@gelu.defjvp
def _gelu_jvp(primals, tangents):
  (x,), (dx,) = primals, tangents
  cdf = _normal_cdf(x)
  pdf = jnp.exp(-0.5 * x * x) * np.sqrt(0.5 / np.pi).astype(x.dtype)
  return x * cdf, (cdf + x * pdf) * dx


class Dense(nn.Module):
  """y = x·W + b over the last axis, run as one 2-D matmul [∏ leading, C_in]·W.

  Parameters and names as `nn.Dense` (`kernel` [C_in, C_out], `bias`
  [C_out], float32, computation in `dtype`), so checkpoints and converters
  are unchanged. Token tensors [B, T, C] (or windows [B·nW, N, C]) are
  flattened first because XLA:CPU runs the forward and especially the
  backward (dW = Xᵀ·dY) of a rank-2 dot markedly faster than the rank-3
  contraction (≈10% of a ViT-S train step).
  """
  features: int
  use_bias: bool = True
  dtype: Dtype = jnp.float32
  kernel_init: Any = nn.initializers.lecun_normal()
  bias_init: Any = nn.initializers.zeros

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    kernel = self.param('kernel', self.kernel_init, (x.shape[-1], self.features), jnp.float32)
    y = x.reshape(-1, x.shape[-1]).astype(self.dtype) @ kernel.astype(self.dtype)
    if self.use_bias:
      y = y + self.param('bias', self.bias_init, (self.features,), jnp.float32).astype(self.dtype)
    return y.reshape(*x.shape[:-1], self.features)


def depthwise_conv(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """Depthwise k×k convolution, stride 1, zero 'same' padding p = k // 2 (odd k), NHWC.

      y[b, h, w, c] = Σ_{i, j < k} x_pad[b, h + i, w + j, c] · K[i, j, 0, c]

  with `kernel` K in `nn.Conv(feature_group_count=C)`'s layout [k, k, 1, C].
  On CPU this is spelled as k² shifted multiply-adds, which XLA fuses into
  one elementwise pass (and whose gradients are elementwise too): XLA:CPU's
  grouped convolution measured 7–30× slower forward+backward on MiT's
  shapes. Elsewhere it is `lax.conv_general_dilated` (cuDNN on GPU).
  """
  k = kernel.shape[0]
  if kernel.shape[:3] != (k, k, 1) or k % 2 == 0 or kernel.shape[3] != x.shape[-1]:
    raise ValueError(f'depthwise_conv needs an odd k×k kernel [k, k, 1, {x.shape[-1]}], '
                     f'got {tuple(kernel.shape)}')
  p = k // 2

  def conv(x, kernel):
    return jax.lax.conv_general_dilated(x, kernel, (1, 1), ((p, p), (p, p)),
                                        dimension_numbers=('NHWC', 'HWIO', 'NHWC'),
                                        feature_group_count=x.shape[-1])

  def shift_and_add(x, kernel):
    h, w = x.shape[1:3]
    padded = jnp.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
    y = None
    for i in range(k):
      for j in range(k):
        tap = padded[:, i:i + h, j:j + w, :] * kernel[i, j, 0]
        y = tap if y is None else y + tap
    return y

  return jax.lax.platform_dependent(x, kernel, cpu=shift_and_add, default=conv)


class DepthwiseConv(nn.Module):
  """`depthwise_conv` + bias with `nn.Conv`'s parameters (`kernel` [k, k, 1, C], `bias` [C])."""
  kernel_size: int = 3
  dtype: Dtype = jnp.float32
  kernel_init: Any = nn.initializers.lecun_normal()
  bias_init: Any = nn.initializers.zeros

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    c, k = x.shape[-1], self.kernel_size
    kernel = self.param('kernel', self.kernel_init, (k, k, 1, c), jnp.float32)
    bias = self.param('bias', self.bias_init, (c,), jnp.float32)
    return depthwise_conv(x.astype(self.dtype), kernel.astype(self.dtype)) + bias.astype(self.dtype)


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


def apply_blocks(block_cls: type[nn.Module], kwargs: dict[str, Any], x: jax.Array,
                 rates: Sequence[float], name: str, scan: bool = False,
                 remat: bool = False) -> jax.Array:
  """x ← block_ℓ(x, rate_ℓ) for ℓ = 0 … L−1 (L = len(rates)); call inside a compact method.

  `block_cls(**kwargs)(x, rate)` must return `(x, None)`. Unrolled, block ℓ's
  variables are `{name}_{ℓ}`; with `scan` the blocks run as one `nn.scan`
  whose variables are `name` with a leading [L] axis (one compiled block body
  instead of L, so compile time stays flat in depth; `vision.load_pretrained`
  stacks unrolled checkpoints into this layout). `remat` recomputes each
  block's activations in the backward pass (`nn.remat`), trading compute for
  memory. XLA:CPU runs convolutions inside a loop body far slower than at top
  level (jax-ml/jax#12868), so scanning blocks that convolve (PVT's and MiT's
  spatial reduction, MiT's depthwise conv) is for GPU/TPU; on CPU keep them
  unrolled.
  """
  if remat:
    block_cls = nn.remat(block_cls, prevent_cse=not scan)
  if scan:
    scanned = nn.scan(block_cls, variable_axes={'params': 0},
                      split_rngs={'params': True, 'dropout': True},
                      in_axes=0, length=len(rates))
    x, _ = scanned(**kwargs, name=name)(x, jnp.asarray(rates, jnp.float32))
    return x
  for i, rate in enumerate(rates):
    x, _ = block_cls(**kwargs, name=f'{name}_{i}')(x, rate)
  return x


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
    x = gelu(x)
    x = nn.Dropout(self.drop_rate)(x, deterministic=deterministic)
    x = Dense(out_dim, dtype=self.dtype, kernel_init=dense_init, name='fc2')(x)
    return nn.Dropout(self.drop_rate)(x, deterministic=deterministic)


def dot_product_attention(q: jax.Array, k: jax.Array, v: jax.Array,
                          bias: Optional[jax.Array] = None) -> jax.Array:
  """softmax(QKᵀ/√d + B)·V over [B, T, heads, head_dim] tensors.

  On GPU/TPU this is `jax.nn.dot_product_attention`, so XLA or cuDNN's fused
  kernel picks the implementation. On CPU (chosen at lowering time with
  `lax.platform_dependent`) the same math runs head-major: Q, K, V are
  transposed once to [B, heads, T, d] so both batched matmuls see contiguous
  batch dimensions; XLA's generic path instead transposes inside each
  einsum, forward and backward (≈1.5× slower on ViT-S attention). The
  softmax runs in float32 whatever the compute dtype; float64 inputs (the
  gradient checks) stay float64 on every platform. `bias` broadcasts to
  [B, heads, T, S].
  """
  if bias is not None:
    bias = bias.astype(q.dtype)
  if q.dtype == jnp.float64:
    return _head_major_attention(q, k, v, bias)
  return jax.lax.platform_dependent(
      q, k, v, bias, cpu=_head_major_attention,
      default=lambda q, k, v, bias: jax.nn.dot_product_attention(q, k, v, bias=bias))


def _head_major_attention(q: jax.Array, k: jax.Array, v: jax.Array,
                          bias: Optional[jax.Array]) -> jax.Array:
  """Attention computed on [B, heads, T, d]; inputs and output [B, T, heads, d]."""
  q, k, v = (t.transpose(0, 2, 1, 3) for t in (q, k, v))
  scores = jnp.einsum('bhqd,bhkd->bhqk', q * np.asarray(q.shape[-1] ** -0.5, q.dtype), k)
  if bias is not None:
    scores = scores + bias
  softmax_dtype = jnp.promote_types(q.dtype, jnp.float32)
  probs = jax.nn.softmax(scores.astype(softmax_dtype), axis=-1).astype(v.dtype)
  return jnp.einsum('bhqk,bhkd->bhqd', probs, v).transpose(0, 2, 1, 3)


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
