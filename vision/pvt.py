"""Pyramid Vision Transformer v1 (Wang et al., ICCV 2021), "Pyramid Vision
Transformer: A Versatile Backbone for Dense Prediction without Convolutions",
as pure flax.linen.

Four stages; stage i turns the previous map into tokens with a non-overlapping
patch embedding (P_i = 4, 2, 2, 2) and runs d_i pre-norm transformer blocks:

    z = LN(Conv_{P_i×P_i, stride P_i}(x)) + E_i                 (E_i: learned)
    z' = z + DropPath(SRA(LN(z)))
    z  = z' + DropPath(MLP(LN(z')))                             (MLP ratio r_i)

Spatial-reduction attention (SRA) attends from every token to a map shrunk by
R_i, so its cost is N²/R_i² instead of N²:

    SRA(x) = Concat(head_0, …, head_h) W^O,
    head_j = softmax(Q_j K_jᵀ / √d) V_j,  Q = x W^Q,  [K, V] = SR(x) W^{KV},
    SR(x)  = LN(Reshape(x, R_i) W^S)      (a R_i×R_i conv with stride R_i)

The class token is prepended in stage 4 only (whose R = 1); the classifier reads
it after the final LayerNorm. The fused `kv` projection stores K in its first C
output features and V in the last C (docs/references.md item 9).

LayerNorm eps (docs/references.md item 2): the original code uses 1e-6 in the blocks and
the final norm (`norm_eps`) and torch's default 1e-5 in the patch-embedding and
spatial-reduction norms (`embed_norm_eps`); these are the defaults here. HF's
`PvtForImageClassification` uses `config.layer_norm_eps` (1e-6) everywhere:
build with `embed_norm_eps=1e-6` to reproduce it bit-for-bit
(`vision.weights.pvt.HF_OVERRIDES`).

Feature pyramid (`features_only=True`): four NHWC maps at strides 4, 8, 16, 32
with `embed_dims` channels: the outputs of stages 1–3 (what the next patch
embedding consumes) and the final-LayerNorm output of stage 4 without its
class token (HF `PvtModel.last_hidden_state[:, 1:]`). The `head` is neither
created nor used in that mode.

Position embeddings are fixed to `img_size`: images must be exactly that size;
`vision.load_pretrained(..., img_size=...)` resizes a checkpoint's grids
bilinearly (class-token entry untouched).
"""
from __future__ import annotations

from typing import Any, Sequence, Union

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from vision import kernels
from vision import layers
from vision.spec import ModelDef

Dtype = Any


# trunc_normal(std 0.02) as in the reference code, for every weight with >2 dims.
trunc_normal_init = kernels.flat_init(layers.dense_init)


def layer_norm(eps: float, dtype: Dtype, name: str) -> nn.LayerNorm:
  """torch-style LayerNorm: two-pass variance, float32 statistics."""
  return nn.LayerNorm(epsilon=eps, dtype=dtype, use_fast_variance=False, name=name)


def check_stage_config(model: str, depths: Sequence[int], **per_stage: Sequence[Any]) -> None:
  """ValueError unless every per-stage tuple has one entry per stage."""
  if not depths or any(int(d) < 1 for d in depths):
    raise ValueError(f'{model}: depths={tuple(depths)!r} must be positive block counts.')
  for field, values in per_stage.items():
    if len(values) != len(depths):
      raise ValueError(
          f'{model}: {field}={tuple(values)!r} has {len(values)} entries but depths='
          f'{tuple(depths)!r} has {len(depths)} stages; give one entry per stage.')


def check_heads(model: str, embed_dims: Sequence[int], num_heads: Sequence[int]) -> None:
  for i, (dim, heads) in enumerate(zip(embed_dims, num_heads)):
    if heads < 1 or dim % heads:
      raise ValueError(
          f'{model}: stage {i + 1} has embed_dims[{i}]={dim} not divisible by '
          f'num_heads[{i}]={heads}; pick heads that divide the width.')


def stage_blocks(model: nn.Module, block_cls: type[nn.Module], i: int, tokens: jax.Array,
                 hw: tuple[int, int], rates: Sequence[float], deterministic: bool) -> jax.Array:
  """Stage i's blocks (`PVTBlock` or `vision.mit.MiTBlock`) over `tokens`, built from the
  per-stage fields `model` (a PVT or MixTransformer) shares; `layers.apply_blocks`
  names them `block{i+1}_{j}`, or `block{i+1}` stacked with `model.scan_blocks`."""
  block = dict(dim=model.embed_dims[i], num_heads=model.num_heads[i],
               mlp_ratio=model.mlp_ratios[i], sr_ratio=model.sr_ratios[i], hw=hw,
               qkv_bias=model.qkv_bias, drop_rate=model.drop_rate, norm_eps=model.norm_eps,
               sr_norm_eps=model.embed_norm_eps, deterministic=deterministic, dtype=model.dtype)
  return layers.apply_blocks(block_cls, block, tokens, rates, f'block{i + 1}',
                             model.scan_blocks, model.remat)


class StageEmbed(nn.Module):
  """A stage's tokenizer: Conv_{k×k, stride s, padding p}(x) → LayerNorm → tokens.

  PVT's embedding is non-overlapping (k = s, p = 0: `layers.PatchEmbed`);
  MiT's overlaps (k7/s4/p3, k3/s2/p1: a padded strided `nn.Conv`). Both
  store the projection as `proj` (`kernel` [k, k, C, D], `bias`) and the
  norm as `norm`.

  Returns:
    (tokens [B, H'·W', D], (H', W')).
  """
  embed_dim: int
  kernel: int
  stride: int
  padding: int = 0
  norm_eps: float = 1e-5
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> tuple[jax.Array, tuple[int, int]]:
    k, s, p = self.kernel, self.stride, self.padding
    if k == s and p == 0:
      x = layers.PatchEmbed(self.embed_dim, k, self.dtype, kernel_init=trunc_normal_init,
                            name='proj')(x)
    else:
      x = nn.Conv(self.embed_dim, (k, k), strides=(s, s), padding=((p, p), (p, p)),
                  dtype=self.dtype, kernel_init=trunc_normal_init, name='proj')(x)
    b, h, w, c = x.shape
    x = layer_norm(self.norm_eps, self.dtype, 'norm')(x.reshape(b, h * w, c))
    return x, (h, w)


class SpatialReductionAttention(nn.Module):
  """Multi-head attention whose keys/values come from a map shrunk by `sr_ratio`.

  softmax(Q Kᵀ/√d) V with Q = x W^Q and [K, V] = SR(x) W^{KV}, SR = R×R conv of
  stride R followed by LayerNorm (identity when R = 1). Parameters: `q`, `kv`
  (fused, K first), `sr` + `norm` (R > 1), `proj`.
  """
  num_heads: int
  sr_ratio: int = 1
  qkv_bias: bool = True
  drop_rate: float = 0.0
  sr_norm_eps: float = 1e-5
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, hw: tuple[int, int], deterministic: bool = True) -> jax.Array:
    b, n, c = x.shape
    heads, head_dim = self.num_heads, c // self.num_heads
    dense = lambda f, name, bias=True: layers.Dense(  # noqa: E731
        f, use_bias=bias, dtype=self.dtype, kernel_init=trunc_normal_init, name=name)
    q = dense(c, 'q', self.qkv_bias)(x).reshape(b, n, heads, head_dim)
    kv_in = x
    if self.sr_ratio > 1:
      r = self.sr_ratio
      kv_in = x.reshape(b, hw[0], hw[1], c)
      kv_in = layers.PatchEmbed(c, r, self.dtype, kernel_init=trunc_normal_init,
                                name='sr')(kv_in)
      kv_in = layer_norm(self.sr_norm_eps, self.dtype, 'norm')(kv_in.reshape(b, -1, c))
    kv = dense(2 * c, 'kv', self.qkv_bias)(kv_in).reshape(b, -1, 2, heads, head_dim)
    out = kernels.dot_product_attention(q, kv[:, :, 0], kv[:, :, 1]).reshape(b, n, c)
    out = dense(c, 'proj')(out)
    return nn.Dropout(self.drop_rate)(out, deterministic=deterministic)


class PVTBlock(nn.Module):
  """z' = z + DropPath(SRA(LN(z))); z'' = z' + DropPath(MLP(LN(z'))).

  Called as `(z, drop_path_rate) -> (z'', None)` on tokens of the `hw` grid,
  so a stage can run as one `nn.scan` (`layers.apply_blocks`).
  """
  dim: int
  num_heads: int
  mlp_ratio: float
  sr_ratio: int
  hw: tuple[int, int]
  qkv_bias: bool = True
  drop_rate: float = 0.0
  norm_eps: float = 1e-6
  sr_norm_eps: float = 1e-5
  deterministic: bool = True
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, drop_path_rate: Any = 0.0) -> tuple[jax.Array, None]:
    det = self.deterministic
    y = layer_norm(self.norm_eps, self.dtype, 'norm1')(x)
    y = SpatialReductionAttention(self.num_heads, self.sr_ratio, self.qkv_bias,
                                  self.drop_rate, self.sr_norm_eps, self.dtype,
                                  name='attn')(y, self.hw, det)
    x = x + layers.drop_path(self, y, drop_path_rate, det)
    y = layer_norm(self.norm_eps, self.dtype, 'norm2')(x)
    y = layers.Mlp(int(self.dim * self.mlp_ratio), drop_rate=self.drop_rate, dtype=self.dtype,
                   name='mlp')(y, det)
    return x + layers.drop_path(self, y, drop_path_rate, det), None


class PVT(nn.Module):
  """PVT v1 classifier / feature pyramid.

  Attributes:
    num_classes: classifier width; 0 returns the final class-token features.
    img_size: input size (int or (H, W)); position embeddings are fixed to it.
    in_chans: input channels.
    patch_sizes: per-stage patch (= kernel = stride) of the patch embeddings.
    embed_dims, depths, num_heads, mlp_ratios, sr_ratios: per-stage widths,
      block counts, heads, MLP ratios and spatial-reduction ratios.
    qkv_bias: biases on the q and kv projections.
    drop_rate: dropout after the position embedding, attention projection and
      in the MLPs.
    drop_path_rate: stochastic depth, linear in [0, rate] over all blocks.
    norm_eps: LayerNorm eps of the blocks and the final norm.
    embed_norm_eps: LayerNorm eps of the patch-embedding and SR norms.
    dtype: computation dtype (parameters stay float32).
    scan_blocks: run each stage's blocks as one `nn.scan` (variables
      `block{i}` with a leading [depth] axis instead of `block{i}_{j}`);
      compile time flat in depth (see `layers.apply_blocks` for CPU).
    remat: recompute block activations in the backward pass.
  """
  num_classes: int = 1000
  img_size: Union[int, Sequence[int]] = 224
  in_chans: int = 3
  patch_sizes: Sequence[int] = (4, 2, 2, 2)
  embed_dims: Sequence[int] = (64, 128, 320, 512)
  depths: Sequence[int] = (2, 2, 2, 2)
  num_heads: Sequence[int] = (1, 2, 5, 8)
  mlp_ratios: Sequence[float] = (8, 8, 4, 4)
  sr_ratios: Sequence[int] = (8, 4, 2, 1)
  qkv_bias: bool = True
  drop_rate: float = 0.0
  drop_path_rate: float = 0.0
  norm_eps: float = 1e-6
  embed_norm_eps: float = 1e-5
  dtype: Dtype = jnp.float32
  scan_blocks: bool = False
  remat: bool = False

  def grid_sizes(self) -> list[tuple[int, int]]:
    """Token grid (H_i, W_i) of every stage at `img_size`."""
    h, w = layers.to_2tuple(self.img_size)
    grids = []
    for p in self.patch_sizes:
      h, w = h // p, w // p
      grids.append((h, w))
    return grids

  def validate(self) -> None:
    """Raises a ValueError for configurations that cannot run."""
    check_stage_config('PVT', self.depths, patch_sizes=self.patch_sizes,
                       embed_dims=self.embed_dims, num_heads=self.num_heads,
                       mlp_ratios=self.mlp_ratios, sr_ratios=self.sr_ratios)
    check_heads('PVT', self.embed_dims, self.num_heads)
    if self.in_chans < 1 or self.num_classes < 0:
      raise ValueError(f'PVT: in_chans={self.in_chans} must be ≥ 1 and '
                       f'num_classes={self.num_classes} ≥ 0.')
    if self.sr_ratios[-1] != 1:
      raise ValueError(
          f'PVT: sr_ratios[-1]={self.sr_ratios[-1]}, but the last stage carries the class '
          'token and cannot be spatially reduced; use 1.')
    for i, ((h, w), r) in enumerate(zip(self.grid_sizes(), self.sr_ratios)):
      if min(h, w) < max(r, 1):
        stride = int(np.prod(self.patch_sizes[:i + 1]))
        raise ValueError(
            f'PVT: img_size={self.img_size!r} gives stage {i + 1} a {h}×{w} grid, smaller than '
            f'sr_ratios[{i}]={r}; use img_size ≥ {stride * max(r, 1)}.')
    for name in ('drop_rate', 'drop_path_rate'):
      if not 0.0 <= getattr(self, name) < 1.0:
        raise ValueError(f'PVT: {name}={getattr(self, name)} must be in [0, 1).')

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False,
               features_only: bool = False) -> Union[jax.Array, list[jax.Array]]:
    """Logits [B, num_classes], or with `features_only` four NHWC maps."""
    layers.check_image_shape(x, self.img_size, self.in_chans, 'PVT')
    self.validate()
    deterministic = not train
    b = x.shape[0]
    x = x.astype(self.dtype)
    dpr = layers.drop_path_rates(self.drop_path_rate, self.depths)
    num_stages = len(self.depths)
    features = []
    for i in range(num_stages):
      dim = self.embed_dims[i]
      tokens, hw = StageEmbed(dim, self.patch_sizes[i], self.patch_sizes[i], 0,
                              self.embed_norm_eps, self.dtype, name=f'patch_embed{i + 1}')(x)
      last = i == num_stages - 1
      n = hw[0] * hw[1] + (1 if last else 0)
      pos = self.param(f'pos_embed{i + 1}', trunc_normal_init, (1, n, dim))
      if last:
        cls = self.param('cls_token', trunc_normal_init, (1, 1, dim))
        tokens = jnp.concatenate([jnp.broadcast_to(cls, (b, 1, dim)).astype(tokens.dtype),
                                  tokens], axis=1)
      tokens = nn.Dropout(self.drop_rate)(tokens + pos.astype(tokens.dtype), deterministic)
      tokens = stage_blocks(self, PVTBlock, i, tokens, hw, dpr[i], deterministic)
      if not last:
        x = tokens.reshape(b, hw[0], hw[1], dim)
        features.append(x)
    tokens = layer_norm(self.norm_eps, self.dtype, 'norm')(tokens)
    if features_only:
      features.append(tokens[:, 1:].reshape(b, hw[0], hw[1], self.embed_dims[-1]))
      return features
    pooled = tokens[:, 0]
    if self.num_classes == 0:
      return pooled
    logits = nn.Dense(self.num_classes, dtype=self.dtype, kernel_init=trunc_normal_init,
                      name='head')(pooled)
    chex.assert_shape(logits, (b, self.num_classes))
    return layers.float_logits(logits)


_PVT_DEPTHS = {
    'tiny': (2, 2, 2, 2),
    'small': (3, 4, 6, 3),
    'medium': (3, 4, 18, 3),
    'large': (3, 8, 27, 3),
}

MODELS = {
    f'pvt_{size}': ModelDef(family='pvt', cls=PVT, kwargs={'depths': depths})
    for size, depths in _PVT_DEPTHS.items()
}
