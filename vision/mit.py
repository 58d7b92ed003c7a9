"""Mix Transformer (MiT), the SegFormer encoder (Xie et al., NeurIPS 2021),
"SegFormer: Simple and Efficient Design for Semantic Segmentation with
Transformers", as pure flax.linen; `mit_b*` are its ImageNet classifiers.

Four stages, no position embedding. Stage i embeds the previous map with an
*overlapping* patch embedding (k7/s4/p3, then k3/s2/p1) and runs d_i blocks:

    z = LN(Conv_{k×k, stride s, pad ⌊k/2⌋}(x))
    z' = z + DropPath(EffAttn(LN(z)))          (spatial-reduction attention, R_i)
    z  = z' + DropPath(MixFFN(LN(z')))
    MixFFN(z) = W₂ · GELU(DWConv_{3×3}(W₁ z))  (MLP ratio 4; the 3×3 depthwise
                conv with bias leaks enough zero-padding to encode position)

and ends with its own LayerNorm; the stage output, reshaped to H_i×W_i, feeds
the next stage. Efficient self-attention is PVT's spatial-reduction attention
(`vision.pvt.SpatialReductionAttention`: fused `kv`, K rows first; SR = R×R
conv of stride R + LayerNorm). The classifier averages the stage-4 tokens and
applies `head` (HF `SegformerForImageClassification`).

LayerNorm eps (docs/references.md item 2): the original code uses 1e-6 in the blocks
and stage norms (`norm_eps`) and 1e-5 in the patch-embedding and SR norms
(`embed_norm_eps`); these are the defaults. HF's SegFormer uses 1e-5
throughout: build with `norm_eps=1e-5` to reproduce it exactly
(`vision.weights.segformer.HF_OVERRIDES`).

Feature pyramid (`features_only=True`): the four stage outputs (after each
stage's LayerNorm) as NHWC maps at strides 4, 8, 16, 32 with `embed_dims`
channels; the `head` is neither created nor used.

Images of any size work (no position embedding) as long as every stage's grid
is at least its reduction ratio; `img_size` is the size used for parameter
initialisation and `vision.summary`.
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
from vision import pvt
from vision.spec import ModelDef

Dtype = Any

# The reference init of a depthwise k×k conv: N(0, 2/fan_out), fan_out = k·k
# (per group), drawn flat on CPU (see `vision.kernels.flat_init`).
dwconv_init = kernels.flat_init(nn.initializers.normal(stddev=float(np.sqrt(2.0 / 9.0))))


class MixFFN(nn.Module):
  """fc1 → depthwise 3×3 conv (bias) → exact GELU → dropout → fc2 → dropout."""
  hidden_dim: int
  drop_rate: float = 0.0
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, hw: tuple[int, int], deterministic: bool = True) -> jax.Array:
    b, n, c = x.shape
    y = layers.Dense(self.hidden_dim, dtype=self.dtype, kernel_init=pvt.trunc_normal_init,
                     name='fc1')(x)
    y = y.reshape(b, hw[0], hw[1], self.hidden_dim)
    y = layers.DepthwiseConv(3, dtype=self.dtype, kernel_init=dwconv_init, name='dwconv')(y)
    y = kernels.gelu(y.reshape(b, n, self.hidden_dim))
    y = nn.Dropout(self.drop_rate)(y, deterministic=deterministic)
    y = layers.Dense(c, dtype=self.dtype, kernel_init=pvt.trunc_normal_init, name='fc2')(y)
    return nn.Dropout(self.drop_rate)(y, deterministic=deterministic)


class MiTBlock(nn.Module):
  """z' = z + DropPath(EffAttn(LN(z))); z'' = z' + DropPath(MixFFN(LN(z'))).

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
    y = pvt.layer_norm(self.norm_eps, self.dtype, 'norm1')(x)
    y = pvt.SpatialReductionAttention(self.num_heads, self.sr_ratio, self.qkv_bias,
                                      self.drop_rate, self.sr_norm_eps, self.dtype,
                                      name='attn')(y, self.hw, det)
    x = x + layers.drop_path(self, y, drop_path_rate, det)
    y = pvt.layer_norm(self.norm_eps, self.dtype, 'norm2')(x)
    y = MixFFN(int(self.dim * self.mlp_ratio), self.drop_rate, self.dtype,
               name='mlp')(y, self.hw, det)
    return x + layers.drop_path(self, y, drop_path_rate, det), None


def stage_sizes(size: tuple[int, int], patch_sizes: Sequence[int],
                strides: Sequence[int]) -> list[tuple[int, int]]:
  """Grid of every stage: ⌊(n + 2⌊k/2⌋ − k)/s⌋ + 1 per overlapping embedding."""
  h, w = size
  out = []
  for k, s in zip(patch_sizes, strides):
    h = (h + 2 * (k // 2) - k) // s + 1
    w = (w + 2 * (k // 2) - k) // s + 1
    out.append((h, w))
  return out


class MixTransformer(nn.Module):
  """MiT encoder with an average-pool classifier, or its feature pyramid.

  Attributes:
    num_classes: classifier width; 0 returns the pooled stage-4 features.
    img_size: initialisation/summary size (int or (H, W)); other sizes work.
    in_chans: input channels.
    patch_sizes, strides: overlapping patch embeddings (kernel, stride; the
      padding is kernel // 2).
    embed_dims, depths, num_heads, mlp_ratios, sr_ratios: per stage.
    qkv_bias: biases on the q and kv projections.
    drop_rate: dropout after the attention projection and in the Mix-FFN.
    drop_path_rate: stochastic depth, linear in [0, rate] over all blocks
      (0.1 in the released configs).
    norm_eps: LayerNorm eps of the blocks and stage norms.
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
  patch_sizes: Sequence[int] = (7, 3, 3, 3)
  strides: Sequence[int] = (4, 2, 2, 2)
  embed_dims: Sequence[int] = (32, 64, 160, 256)
  depths: Sequence[int] = (2, 2, 2, 2)
  num_heads: Sequence[int] = (1, 2, 5, 8)
  mlp_ratios: Sequence[float] = (4, 4, 4, 4)
  sr_ratios: Sequence[int] = (8, 4, 2, 1)
  qkv_bias: bool = True
  drop_rate: float = 0.0
  drop_path_rate: float = 0.1
  norm_eps: float = 1e-6
  embed_norm_eps: float = 1e-5
  dtype: Dtype = jnp.float32
  scan_blocks: bool = False
  remat: bool = False

  def check_size(self, size: Any, name: str = 'img_size') -> None:
    """ValueError unless every stage's grid is at least its reduction ratio."""
    size = layers.to_2tuple(size, name)
    minimum = max(max(r, 1) * int(np.prod(self.strides[:i + 1]))
                  for i, r in enumerate(self.sr_ratios))
    for i, ((h, w), r) in enumerate(zip(stage_sizes(size, self.patch_sizes, self.strides),
                                        self.sr_ratios)):
      if min(h, w) < max(r, 1):
        raise ValueError(
            f'MixTransformer: {name}={size!r} gives stage {i + 1} a {h}×{w} grid, smaller '
            f'than sr_ratios[{i}]={r}; use images of at least {minimum}×{minimum} pixels.')

  def validate(self) -> None:
    """Raises a ValueError for configurations that cannot run."""
    pvt.check_stage_config('MixTransformer', self.depths, patch_sizes=self.patch_sizes,
                           strides=self.strides, embed_dims=self.embed_dims,
                           num_heads=self.num_heads, mlp_ratios=self.mlp_ratios,
                           sr_ratios=self.sr_ratios)
    pvt.check_heads('MixTransformer', self.embed_dims, self.num_heads)
    if self.in_chans < 1 or self.num_classes < 0:
      raise ValueError(f'MixTransformer: in_chans={self.in_chans} must be ≥ 1 and '
                       f'num_classes={self.num_classes} ≥ 0.')
    for name in ('drop_rate', 'drop_path_rate'):
      if not 0.0 <= getattr(self, name) < 1.0:
        raise ValueError(f'MixTransformer: {name}={getattr(self, name)} must be in [0, 1).')
    self.check_size(self.img_size)

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False,
               features_only: bool = False) -> Union[jax.Array, list[jax.Array]]:
    """Logits [B, num_classes], or with `features_only` four NHWC maps."""
    if x.ndim != 4 or x.shape[-1] != self.in_chans:
      raise ValueError(
          f'MixTransformer expects NHWC images [batch, H, W, {self.in_chans}] '
          f'(in_chans={self.in_chans}), got {tuple(x.shape)}.')
    self.validate()
    self.check_size(tuple(x.shape[1:3]), 'image size')
    deterministic = not train
    b = x.shape[0]
    x = x.astype(self.dtype)
    dpr = layers.drop_path_rates(self.drop_path_rate, self.depths)
    features = []
    for i, depth in enumerate(self.depths):
      dim, k = self.embed_dims[i], self.patch_sizes[i]
      tokens, hw = pvt.StageEmbed(dim, k, self.strides[i], k // 2, self.embed_norm_eps,
                                  self.dtype, name=f'patch_embed{i + 1}')(x)
      tokens = pvt.stage_blocks(self, MiTBlock, i, tokens, hw, dpr[i], deterministic)
      tokens = pvt.layer_norm(self.norm_eps, self.dtype, f'norm{i + 1}')(tokens)
      x = tokens.reshape(b, hw[0], hw[1], dim)
      features.append(x)
    if features_only:
      return features
    pooled = tokens.mean(axis=1)
    if self.num_classes == 0:
      return pooled
    logits = nn.Dense(self.num_classes, dtype=self.dtype, kernel_init=pvt.trunc_normal_init,
                      name='head')(pooled)
    chex.assert_shape(logits, (b, self.num_classes))
    return layers.float_logits(logits)


_WIDE = (64, 128, 320, 512)

# (embed_dims, depths) of MiT-B0…B5 (the released code; MLP ratio 4, heads 1/2/5/8).
CONFIGS = {
    'b0': ((32, 64, 160, 256), (2, 2, 2, 2)),
    'b1': (_WIDE, (2, 2, 2, 2)),
    'b2': (_WIDE, (3, 4, 6, 3)),
    'b3': (_WIDE, (3, 4, 18, 3)),
    'b4': (_WIDE, (3, 8, 27, 3)),
    'b5': (_WIDE, (3, 6, 40, 3)),
}

MODELS = {
    f'mit_{v}': ModelDef(family='mit', cls=MixTransformer,
                         kwargs={'embed_dims': dims, 'depths': depths})
    for v, (dims, depths) in CONFIGS.items()
}
