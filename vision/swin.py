"""Swin Transformer (Liu et al., ICCV 2021), "Hierarchical Vision Transformer
using Shifted Windows", as pure flax.linen.

    tokens = LN(Conv_{p×p, stride p}(image))                       patch embedding
    stage i (C_i = C·2^i, resolution H/(p·2^i)):
      z' = z + DropPath(W-MSA(LN(z)))        (even blocks)  SW-MSA (odd blocks)
      z  = z' + DropPath(MLP(LN(z')))
      z  = PatchMerging(z) between stages: concat 2×2 neighbours → LN(4C) → Linear(4C→2C)
    logits = Linear(mean_tokens(LN(z)))

Window attention over non-overlapping M×M windows (W-MSA) adds a learned
relative position bias to the scores,

    Attention(Q, K, V) = softmax(QKᵀ/√d + B) V,   B[i, j] = T[(dy+M−1)(2M−1) + (dx+M−1)]

with (dy, dx) = position(i) − position(j) and T a (2M−1)²×heads table. Shifted
windows (SW-MSA, odd blocks) cyclically roll the map by −s = −⌊M/2⌋ before the
partition and by +s after; pairs of tokens that come from different regions of
the un-rolled map get −100 added to their score (the "mask"), so the shifted
windows cost nothing extra. Numeric details follow docs/references.md
items 4–8 and 11 and HuggingFace `modeling_swin.py`:

* A stage whose resolution min(H, W) ≤ M uses one window of size min(H, W)
  and no shift. The relative-bias table always has the configured (2M−1)²
  rows; a shrunken window of size r < M reads the rows of offsets |d| < r
  (the same index formula with M), so a model loaded at another `img_size`
  keeps every table as it is in the checkpoint.
* Sizes that are not multiples of the window are zero-padded at the bottom and
  right after the first LayerNorm, then rolled (HF order); the mask is computed
  on the padded map and the padding is cropped after the reverse roll.
* Patch merging zero-pads odd H/W; its 2×2 order is x0=[0::2, 0::2],
  x1=[1::2, 0::2], x2=[0::2, 1::2], x3=[1::2, 1::2].
* LayerNorm eps 1e-5, exact GELU, drop path linear in [0, r] over all blocks,
  applied to both residual branches (the paper's code; HF 5.x drops only the
  attention branch, which matters in training only).

Feature pyramid (`features_only=True`): one NHWC map per stage, the stage's
output *before* its patch merging, at strides p·2^i (4, 8, 16, 32 for the
registered models) with C·2^i channels, each passed through its own
LayerNorm `feature_norms_i` (HF `SwinBackbone.hidden_states_norms`; the
mmsegmentation Swin backbone does the same). The classifier's final `norm`
and `head` are neither created nor used in that mode.
"""
from __future__ import annotations

from typing import Any, Optional, Sequence, Union

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from vision import kernels
from vision import layers
from vision.spec import ModelDef

Dtype = Any
_LN_EPS = 1e-5
_MASK_VALUE = -100.0


def window_and_shift(resolution: tuple[int, int], window: int) -> tuple[int, int]:
  """The window r and shift s a block uses at a stage of `resolution` (H, W).

  A stage no larger than the window is one window: r = min(H, W), s = 0
  (docs/references.md item 6). Otherwise r = M and s = ⌊M/2⌋ (the shift applies to odd
  blocks only; callers zero it for even ones).
  """
  if min(resolution) <= window:
    return min(resolution), 0
  return window, window // 2


def relative_position_index(window: int, table_window: Optional[int] = None) -> np.ndarray:
  """Rows of the bias table for every pair of tokens of an r×r window.

  index[i, j] = (dy + M − 1)(2M − 1) + (dx + M − 1), (dy, dx) = pos(i) − pos(j),
  tokens in row-major order; M = `table_window` (defaults to r) is the window
  the (2M−1)² table was built for.

  Returns:
    int32 array [r², r²].
  """
  m = window if table_window is None else table_window
  if window > m:
    raise ValueError(f'window={window} is larger than the table window {m}.')
  coords = np.stack(np.meshgrid(np.arange(window), np.arange(window), indexing='ij'))
  coords = coords.reshape(2, -1)
  rel = coords[:, :, None] - coords[:, None, :]  # [2, r², r²]
  return ((rel[0] + m - 1) * (2 * m - 1) + (rel[1] + m - 1)).astype(np.int32)


def shifted_window_mask(height: int, width: int, window: int, shift: int) -> np.ndarray:
  """Additive SW-MSA mask on a (padded) height×width map, before the roll back.

  Positions get a region id from the slices (0, −M), (−M, −s), (−s, None) on
  each axis (id = 3·row_region + col_region); within each M×M window of the
  rolled map, pairs from different regions get −100, same region 0.

  Returns:
    float32 array [num_windows, M², M²], windows in row-major order.
  """
  if height % window or width % window:
    raise ValueError(f'mask size {height}×{width} is not a multiple of window={window}.')
  img = np.zeros((height, width), np.float32)
  slices = (slice(0, -window), slice(-window, -shift), slice(-shift, None))
  count = 0
  for hs in slices:
    for ws in slices:
      img[hs, ws] = count
      count += 1
  windows = window_partition(img[None, :, :, None], window).reshape(-1, window * window)
  diff = windows[:, None, :] - windows[:, :, None]
  return np.where(diff != 0, _MASK_VALUE, 0.0).astype(np.float32)


def window_partition(x, window: int):
  """[B, H, W, C] → [B·(H/r)·(W/r), r·r, C], windows row-major (numpy or jax)."""
  b, h, w, c = x.shape
  x = x.reshape(b, h // window, window, w // window, window, c)
  x = x.transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(b * (h // window) * (w // window), window * window, c)


def window_reverse(windows: jax.Array, window: int, height: int, width: int) -> jax.Array:
  """Inverse of `window_partition`: [B·nW, r·r, C] → [B, H, W, C]."""
  c = windows.shape[-1]
  x = windows.reshape(-1, height // window, width // window, window, window, c)
  x = x.transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(-1, height, width, c)


class WindowAttention(nn.Module):
  """Multi-head self-attention inside windows with a relative position bias.

  softmax(QKᵀ/√d + B + mask)·V per window; qkv is one fused Dense (timm
  layout: output features ordered [q | k | v], heads contiguous in each).
  """
  num_heads: int
  window_size: int  # M: the configured window, which sizes the bias table
  drop_rate: float = 0.0
  dtype: Dtype = jnp.float32
  relative_position_bias: bool = True  # False: the paper's "no pos." ablation
  appearance: bool = True  # False: drop QKᵀ/√d, softmax(B + mask)·V ("rel. pos. w/o app.")

  @nn.compact
  def __call__(self, x: jax.Array, window: int, mask: Optional[np.ndarray],
               deterministic: bool = True) -> jax.Array:
    """x: [B·nW, r², C]; mask: [nW, r², r²] or None."""
    bw, n, c = x.shape
    head_dim = c // self.num_heads
    m = self.window_size
    bias = jnp.zeros((1, self.num_heads, n, n), jnp.float32)
    if self.relative_position_bias:
      table = self.param('relative_position_bias_table', layers.dense_init,
                         ((2 * m - 1) ** 2, self.num_heads), jnp.float32)
      index = relative_position_index(window, m)
      bias = jnp.take(table, index.reshape(-1), axis=0).reshape(n, n, self.num_heads)
      bias = bias.transpose(2, 0, 1)[None]  # [1, heads, r², r²]
    if mask is not None:
      num_windows = mask.shape[0]
      bias = bias + jnp.asarray(mask)[:, None]  # [nW, heads, r², r²]
      bias = kernels.broadcast_leading(bias, bw // num_windows)
      bias = bias.reshape(bw, self.num_heads, n, n)

    qkv = layers.Dense(3 * c, dtype=self.dtype, kernel_init=layers.dense_init, name='qkv')(x)
    qkv = qkv.reshape(bw, n, 3, self.num_heads, head_dim)
    q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
    if not self.appearance:
      q = jnp.zeros_like(q)  # QKᵀ = 0: the scores are the bias alone
    out = kernels.dot_product_attention(q, k, v, bias=bias).reshape(bw, n, c)
    out = layers.Dense(c, dtype=self.dtype, kernel_init=layers.dense_init, name='proj')(out)
    return nn.Dropout(self.drop_rate)(out, deterministic=deterministic)


class SwinBlock(nn.Module):
  """One Swin block: (S)W-MSA and MLP, each pre-norm with a residual.

  Called as `(x, (rate, shifted)) -> (x', None)` on [B, H, W, C] maps so a
  stage runs through `layers.apply_blocks`: `rate` is the block's
  drop-path rate and `shifted` whether it is an SW-MSA block. Both are
  Python values in an unrolled stage (a static roll; W-MSA blocks skip the
  roll and the mask) or traced scalars (float32, bool) in a scanned stage,
  where the roll is dynamic and the mask is multiplied by the flag, so
  shifted and plain blocks share one body.
  """
  num_heads: int
  window_size: int
  mlp_ratio: float = 4.0
  drop_rate: float = 0.0
  dtype: Dtype = jnp.float32
  relative_position_bias: bool = True
  appearance: bool = True
  deterministic: bool = True

  @nn.compact
  def __call__(self, x: jax.Array, per_block: tuple[Any, Any]) -> tuple[jax.Array, None]:
    rate, shifted = per_block
    deterministic = self.deterministic
    b, h, w, c = x.shape
    window, shift = window_and_shift((h, w), self.window_size)
    static = isinstance(shifted, (bool, np.bool_))
    if static and not shifted:
      shift = 0
    pad_h, pad_w = (-h) % window, (-w) % window

    y = nn.LayerNorm(_LN_EPS, dtype=self.dtype, name='norm1')(x)
    y = jnp.pad(y, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)))
    hp, wp = h + pad_h, w + pad_w
    mask = None
    if shift:
      amount = shift if static else shift * jnp.asarray(shifted, jnp.int32)
      y = jnp.roll(y, (-amount, -amount), axis=(1, 2))
      mask = jnp.asarray(shifted_window_mask(hp, wp, window, shift))
      if not static:
        mask = mask * jnp.asarray(shifted, mask.dtype)
    y = window_partition(y, window)
    y = WindowAttention(self.num_heads, self.window_size, self.drop_rate, self.dtype,
                        self.relative_position_bias, self.appearance, name='attn')(
                            y, window, mask, deterministic)
    y = window_reverse(y, window, hp, wp)
    if shift:
      y = jnp.roll(y, (amount, amount), axis=(1, 2))
    y = y[:, :h, :w]
    x = x + layers.drop_path(self, y, rate, deterministic)

    y = nn.LayerNorm(_LN_EPS, dtype=self.dtype, name='norm2')(x)
    y = layers.Mlp(int(c * self.mlp_ratio), drop_rate=self.drop_rate, dtype=self.dtype,
                   name='mlp')(y, deterministic)
    return x + layers.drop_path(self, y, rate, deterministic), None


class PatchMerging(nn.Module):
  """2×2 neighbour concatenation, LN(4C), bias-free Linear 4C → 2C (stride 2)."""
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    b, h, w, c = x.shape
    x = jnp.pad(x, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)))
    x = jnp.concatenate(
        [x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], axis=-1)
    x = nn.LayerNorm(_LN_EPS, dtype=self.dtype, name='norm')(x)
    return layers.Dense(2 * c, use_bias=False, dtype=self.dtype, kernel_init=layers.dense_init,
                        name='reduction')(x)


class SwinTransformer(nn.Module):
  """Swin Transformer classifier / hierarchical backbone (NHWC in).

  Attributes:
    num_classes: classifier width; 0 returns the pooled features.
    img_size: input size, an int or (height, width); must be a multiple of
      `patch_size`.
    in_chans: input channels.
    drop_rate: dropout after the patch embedding, the attention projection
      and inside the MLP.
    drop_path_rate: stochastic depth, linspace(0, rate, sum(depths)).
    dtype: computation dtype (parameters stay float32).
    patch_size: p, the stride of the patch embedding.
    window_size: M, the attention window.
    embed_dim: C, the stage-1 width; stage i has C·2^i.
    depths: blocks per stage.
    num_heads: heads per stage.
    mlp_ratio: MLP hidden width / block width.
    remat: recompute each block's activations in the backward pass
      (`nn.remat`), trading compute for memory.
    scan_blocks: run each stage's blocks as one `nn.scan` (variables
      `layers_{i}_blocks` with a leading [depth] axis instead of
      `layers_{i}_blocks_{j}`; compile time flat in depth, e.g. Swin-L's
      18-block stage). Same outputs as unrolled.
    shifted_windows: shift the windows by ⌊M/2⌋ on odd blocks (False: every
      block is W-MSA; the paper's "w/o shifting" ablation, Table 4).
    relative_position_bias: add the learned bias B to the attention scores.
    appearance: keep the QKᵀ/√d term of the scores (False: attention from
      the bias B alone, the paper's "rel. pos. w/o app." row).
    absolute_pos_embed: add a learned [1, H/p·W/p, C] embedding after the
      patch embedding (the paper's "abs. pos." row; trunc-normal 0.02).
  """
  num_classes: int = 1000
  img_size: Union[int, Sequence[int]] = 224
  in_chans: int = 3
  drop_rate: float = 0.0
  drop_path_rate: float = 0.0
  dtype: Dtype = jnp.float32
  patch_size: int = 4
  window_size: int = 7
  embed_dim: int = 96
  depths: Sequence[int] = (2, 2, 6, 2)
  num_heads: Sequence[int] = (3, 6, 12, 24)
  mlp_ratio: float = 4.0
  remat: bool = False
  scan_blocks: bool = False
  shifted_windows: bool = True
  relative_position_bias: bool = True
  absolute_pos_embed: bool = False
  appearance: bool = True

  @property
  def stage_dims(self) -> tuple[int, ...]:
    """Channels of each stage's output, C·2^i."""
    return tuple(self.embed_dim * 2 ** i for i in range(len(self.depths)))

  @property
  def feature_strides(self) -> tuple[int, ...]:
    """Stride of each stage's output relative to the image, p·2^i."""
    return tuple(self.patch_size * 2 ** i for i in range(len(self.depths)))

  def validate(self) -> None:
    """Raises ValueError for configurations that cannot be built."""
    def need(ok: bool, message: str) -> None:
      if not ok:
        raise ValueError(message)

    need(isinstance(self.patch_size, int) and self.patch_size >= 1,
         f'patch_size={self.patch_size!r}: expected a positive int.')
    need(isinstance(self.window_size, int) and self.window_size >= 1,
         f'window_size={self.window_size!r}: expected a positive int.')
    height, width = layers.to_2tuple(self.img_size)
    need(height >= self.patch_size and width >= self.patch_size
         and height % self.patch_size == 0 and width % self.patch_size == 0,
         f'img_size={self.img_size!r} is not tiled by patch_size={self.patch_size}: '
         f'use a multiple of {self.patch_size} (e.g. '
         f'{max(1, round(height / self.patch_size)) * self.patch_size}).')
    need(len(self.depths) >= 1 and all(isinstance(d, int) and d >= 1 for d in self.depths),
         f'depths={tuple(self.depths)!r}: expected one positive int per stage.')
    need(len(self.num_heads) == len(self.depths),
         f'num_heads={tuple(self.num_heads)!r} must have one entry per stage '
         f'(depths={tuple(self.depths)!r}).')
    need(isinstance(self.embed_dim, int) and self.embed_dim >= 1,
         f'embed_dim={self.embed_dim!r}: expected a positive int.')
    for i, (dim, heads) in enumerate(zip(self.stage_dims, self.num_heads)):
      need(isinstance(heads, int) and heads >= 1 and dim % heads == 0,
           f'num_heads[{i}]={heads!r} does not divide the stage width {dim} '
           f'(embed_dim={self.embed_dim}·2^{i}); valid head counts: '
           f'{[d for d in range(1, dim + 1) if dim % d == 0 and dim // d >= 8]}.')
    need(self.mlp_ratio > 0 and int(self.embed_dim * self.mlp_ratio) >= 1,
         f'mlp_ratio={self.mlp_ratio!r}: expected a positive ratio.')
    need(isinstance(self.in_chans, int) and self.in_chans >= 1,
         f'in_chans={self.in_chans!r}: expected a positive int.')
    need(isinstance(self.num_classes, int) and self.num_classes >= 0,
         f'num_classes={self.num_classes!r}: expected an int ≥ 0.')
    for field in ('drop_rate', 'drop_path_rate'):
      rate = getattr(self, field)
      need(0.0 <= rate < 1.0, f'{field}={rate!r}: expected a rate in [0, 1).')

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False,
               features_only: bool = False) -> Union[jax.Array, list[jax.Array]]:
    """Logits [B, num_classes] (or the stage feature maps, see module doc).

    Args:
      x: images [B, H, W, in_chans], float.
      train: enables dropout and drop path (needs the 'dropout' rng).
      features_only: return the list of per-stage NHWC feature maps.
    """
    self.validate()
    layers.check_image_shape(x, self.img_size, self.in_chans, 'Swin')
    deterministic = not train
    x = x.astype(self.dtype)
    x = layers.PatchEmbed(self.embed_dim, self.patch_size, self.dtype,
                          kernel_init=layers.dense_init, name='patch_embed_proj')(x)
    x = nn.LayerNorm(_LN_EPS, dtype=self.dtype, name='patch_embed_norm')(x)
    if self.absolute_pos_embed:
      _, gh, gw, c = x.shape
      pos = self.param('absolute_pos_embed', layers.dense_init, (1, gh * gw, c), jnp.float32)
      x = x + pos.reshape(1, gh, gw, c).astype(x.dtype)
    x = nn.Dropout(self.drop_rate)(x, deterministic=deterministic)

    rates = layers.drop_path_rates(self.drop_path_rate, self.depths)
    features = []
    for i, heads in enumerate(self.num_heads):
      per_block = [(rate, self.shifted_windows and j % 2 == 1) for j, rate in enumerate(rates[i])]
      kwargs = dict(num_heads=heads, window_size=self.window_size, mlp_ratio=self.mlp_ratio,
                    drop_rate=self.drop_rate, dtype=self.dtype,
                    relative_position_bias=self.relative_position_bias,
                    appearance=self.appearance, deterministic=deterministic)
      x = layers.apply_blocks(SwinBlock, kwargs, x, per_block, f'layers_{i}_blocks',
                              self.scan_blocks, self.remat)
      if features_only:
        features.append(nn.LayerNorm(_LN_EPS, dtype=self.dtype, name=f'feature_norms_{i}')(x))
      if i < len(self.depths) - 1:
        x = PatchMerging(self.dtype, name=f'layers_{i}_downsample')(x)

    if features_only:
      for f, dim in zip(features, self.stage_dims):
        chex.assert_axis_dimension(f, -1, dim)
      return features
    x = nn.LayerNorm(_LN_EPS, dtype=self.dtype, name='norm')(x)
    x = jnp.mean(x, axis=(1, 2))
    if self.num_classes:
      x = layers.float_logits(nn.Dense(self.num_classes, dtype=self.dtype,
                                       kernel_init=layers.dense_init, name='head')(x))
    return x


def _variant(embed_dim: int, depths: tuple[int, ...], num_heads: tuple[int, ...],
             window_size: int = 7, img_size: int = 224) -> ModelDef:
  return ModelDef(
      family='swin', cls=SwinTransformer,
      kwargs=dict(embed_dim=embed_dim, depths=depths, num_heads=num_heads,
                  window_size=window_size, img_size=img_size, patch_size=4))


MODELS = {
    'swin_tiny_patch4_window7_224': _variant(96, (2, 2, 6, 2), (3, 6, 12, 24)),
    'swin_small_patch4_window7_224': _variant(96, (2, 2, 18, 2), (3, 6, 12, 24)),
    'swin_base_patch4_window7_224': _variant(128, (2, 2, 18, 2), (4, 8, 16, 32)),
    'swin_base_patch4_window12_384': _variant(128, (2, 2, 18, 2), (4, 8, 16, 32),
                                              window_size=12, img_size=384),
    'swin_large_patch4_window7_224': _variant(192, (2, 2, 18, 2), (6, 12, 24, 48)),
}
