"""Vision Transformer (Dosovitskiy et al., ICLR 2021) and its ResNet hybrid.

An image x ∈ R^{H×W×C} is cut into N = HW/P² patches, each linearly
embedded (a P×P conv with stride P), a learned class token is prepended and
a learned position embedding E_pos ∈ R^{(1+N)×D} added:

  z₀ = [x_class; x_p¹E; …; x_pᴺE] + E_pos
  z'_ℓ = z_{ℓ−1} + MSA(LN(z_{ℓ−1}))          (pre-norm blocks, ℓ = 1…L)
  z_ℓ = z'_ℓ + MLP(LN(z'_ℓ))
  y = head(LN(z_L⁰))                          ('token' pooling)
  y = head(LN(mean_{i≥1} z_Lⁱ))               ('gap': mean over patch tokens)

MSA(z) = [head₁; …; head_h] W_o with head_j = softmax(Q_j K_jᵀ/√d) V_j and
[Q, K, V] = z W_qkv (one fused projection, d = D/h); MLP = fc2(GELU(fc1(z)))
with width 4D and exact erf GELU; LayerNorm ε = `norm_eps` (1e-6 as in the
paper's code and timm; HuggingFace's ViT uses 1e-12, which loading an
HF-named checkpoint sets). Stochastic depth (Huang et al. 2016) drops each
residual branch with rate linear in ℓ from 0 to `drop_path_rate`.

`pos_embed='sinusoidal'` replaces the learned E_pos by the fixed 2-D sin-cos
encoding of MAE (He et al. 2022; `sincos_pos_embed_2d`): the sinusoids of
"Attention is all you need" (Vaswani et al. 2017), PE(p, 2k) = sin(p·ω_k),
PE(p, 2k+1) = cos(p·ω_k), ω_k = 10000^{−2k/d}, applied per axis — the first
D/2 channels encode the patch's column, the last D/2 its row, each as D/4
sines then D/4 cosines — and a zero vector for the class token. It has no
parameters and is defined for any grid.

The hybrid (`vit_base_r50_s16_224`) replaces the pixel patches by the 1×1
"patches" of a ResNetV2 feature map at stride 16 (`vision.resnetv2`).

`scan_blocks=True` runs the L identical blocks as one `nn.scan` (one block is
traced and compiled instead of L; parameters gain a leading [L] axis) and
`remat=True` recomputes block activations in the backward pass.
"""
from __future__ import annotations

from typing import Any, Optional

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from vision import kernels
from vision import layers
from vision import resnetv2
from vision.spec import ModelDef

Dtype = Any
POOLS = ('token', 'gap')
POS_EMBEDS = ('learned', 'sinusoidal')


def sincos_pos_embed_2d(dim: int, grid: tuple[int, int]) -> np.ndarray:
  """MAE's fixed 2-D sin-cos position encoding, [1 + H'·W', dim] (row 0: the
  class token, zeros; tokens in row-major order). dim must be a multiple of 4."""
  quarter = dim // 4
  omega = 1.0 / 10000 ** (np.arange(quarter, dtype=np.float64) / quarter)
  rows, cols = np.meshgrid(np.arange(grid[0]), np.arange(grid[1]), indexing='ij')

  def axis(pos: np.ndarray) -> np.ndarray:
    angle = pos.reshape(-1, 1) * omega[None]
    return np.concatenate([np.sin(angle), np.cos(angle)], axis=1)

  table = np.concatenate([axis(cols), axis(rows)], axis=1)
  return np.concatenate([np.zeros((1, dim)), table]).astype(np.float32)


class Attention(nn.Module):
  """Multi-head self-attention with a fused qkv projection."""
  num_heads: int
  qkv_bias: bool = True
  drop_rate: float = 0.0
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, deterministic: bool = True,
               num_queries: Optional[int] = None) -> jax.Array:
    """[B, T, D] → [B, T, D]; with `num_queries` = n, [B, n, D]: the outputs of
    the first n tokens only, attending to all T keys and values."""
    b, t, d = x.shape
    qkv = layers.Dense(3 * d, use_bias=self.qkv_bias, dtype=self.dtype,
                       kernel_init=layers.dense_init, name='qkv')(x)
    qkv = qkv.reshape(b, t, 3, self.num_heads, d // self.num_heads)
    n = t if num_queries is None else num_queries
    out = kernels.dot_product_attention(qkv[:, :n, 0], qkv[:, :, 1], qkv[:, :, 2])
    out = layers.Dense(d, dtype=self.dtype, kernel_init=layers.dense_init,
                       name='proj')(out.reshape(b, n, d))
    return nn.Dropout(self.drop_rate)(out, deterministic=deterministic)


class Block(nn.Module):
  """Pre-norm transformer block; returns (z, None) so it can be scanned.

  `num_queries` = n computes z_ℓ at the first n tokens only (their attention
  still reads all T keys and values): every row of z_ℓ depends on z_{ℓ−1}
  only through K, V and its own row, so those n rows equal the full block's.
  The last block of a class-token ViT needs no other row.
  """
  num_heads: int
  mlp_ratio: float = 4.0
  qkv_bias: bool = True
  drop_rate: float = 0.0
  deterministic: bool = True
  dtype: Dtype = jnp.float32
  norm_eps: float = 1e-6
  num_queries: Optional[int] = None

  @nn.compact
  def __call__(self, x: jax.Array, drop_path_rate: Any = 0.0) -> tuple[jax.Array, None]:
    det = self.deterministic
    y = nn.LayerNorm(epsilon=self.norm_eps, dtype=self.dtype, name='norm1')(x)
    y = Attention(self.num_heads, self.qkv_bias, self.drop_rate, self.dtype,
                  name='attn')(y, det, self.num_queries)
    if self.num_queries is not None:
      x = x[:, :self.num_queries]
    x = x + layers.drop_path(self, y, drop_path_rate, det)
    y = nn.LayerNorm(epsilon=self.norm_eps, dtype=self.dtype, name='norm2')(x)
    y = layers.Mlp(int(x.shape[-1] * self.mlp_ratio), drop_rate=self.drop_rate,
                   dtype=self.dtype, name='mlp')(y, deterministic=det)
    x = x + layers.drop_path(self, y, drop_path_rate, det)
    return x, None


class VisionTransformer(nn.Module):
  """ViT classifier; `hybrid_depths` set → ResNetV2 stem + 1×1 patches (hybrid ViT).

  Attributes:
    patch_size: P (for the hybrid: the patch size on the stride-16 feature map).
    pool: 'token' (class token) or 'gap' (mean of the patch tokens).
    hybrid_depths: ResNetV2 stage depths of the hybrid stem, None for plain ViT.
    scan_blocks: run the blocks as one `nn.scan`; remat: rematerialise them.
    norm_eps: ε of every LayerNorm.
    representation_size: width of the `pre_logits` layer, tanh(W·y + b) before the
      head (the paper's pre-training head); None: no such layer.
    pos_embed: 'learned' (E_pos a parameter) or 'sinusoidal' (fixed 2-D
      sin-cos, `sincos_pos_embed_2d`; embed_dim a multiple of 4).
    full_last_block: compute every token's row in the last block. 'token'
      pooling reads the class token alone, so by default the (unrolled) last
      block computes that row only — the same logits for ≈ 1/L less work;
      True is the computation the papers' FLOP counts describe
      (`vision.summary` counts it).
  """
  num_classes: int = 1000
  img_size: Any = 224
  in_chans: int = 3
  drop_rate: float = 0.0
  drop_path_rate: float = 0.0
  dtype: Dtype = jnp.float32
  patch_size: int = 16
  embed_dim: int = 768
  depth: int = 12
  num_heads: int = 12
  mlp_ratio: float = 4.0
  qkv_bias: bool = True
  pool: str = 'token'
  hybrid_depths: Optional[tuple[int, ...]] = None
  scan_blocks: bool = False
  remat: bool = False
  norm_eps: float = 1e-6
  representation_size: Optional[int] = None
  pos_embed: str = 'learned'
  full_last_block: bool = False

  def grid_size(self) -> tuple[int, int]:
    """Token grid (H', W'): img/P for ViT, the stem's feature map / P for the hybrid."""
    h, w = layers.to_2tuple(self.img_size)
    if self.hybrid_depths:
      n = len(self.hybrid_depths)
      h, w = resnetv2.feature_size(h, n), resnetv2.feature_size(w, n)
    return h // self.patch_size, w // self.patch_size

  def validate(self) -> None:
    """ValueError for hyperparameters no ViT can have."""
    h, w = layers.to_2tuple(self.img_size)
    for field in ('num_classes', 'in_chans', 'patch_size', 'embed_dim', 'depth', 'num_heads'):
      value = getattr(self, field)
      if not isinstance(value, int) or value < 1:
        raise ValueError(f'{field} must be a positive int, got {value!r}.')
    if self.embed_dim % self.num_heads:
      divisors = [k for k in range(1, self.embed_dim + 1) if self.embed_dim % k == 0]
      raise ValueError(
          f'embed_dim={self.embed_dim} is not divisible by num_heads={self.num_heads}; '
          f'valid num_heads: {divisors}.')
    if self.pool not in POOLS:
      raise ValueError(f'pool={self.pool!r} is unknown; valid: {", ".join(POOLS)}.')
    if self.pos_embed not in POS_EMBEDS:
      raise ValueError(f'pos_embed={self.pos_embed!r} is unknown; valid: '
                       f'{", ".join(POS_EMBEDS)}.')
    if self.pos_embed == 'sinusoidal' and self.embed_dim % 4:
      raise ValueError(f'pos_embed=\'sinusoidal\' needs embed_dim divisible by 4, got '
                       f'{self.embed_dim}.')
    if not (isinstance(self.norm_eps, (int, float)) and self.norm_eps > 0):
      raise ValueError(f'norm_eps must be a positive float, got {self.norm_eps!r}.')
    if not self.mlp_ratio > 0:
      raise ValueError(f'mlp_ratio must be > 0, got {self.mlp_ratio!r}.')
    for field in ('drop_rate', 'drop_path_rate'):
      if not 0.0 <= getattr(self, field) < 1.0:
        raise ValueError(f'{field} must be in [0, 1), got {getattr(self, field)!r}.')
    if self.hybrid_depths:
      n = len(self.hybrid_depths)
      feat = (resnetv2.feature_size(h, n), resnetv2.feature_size(w, n))
      if feat[0] % self.patch_size or feat[1] % self.patch_size:
        raise ValueError(
            f'patch_size={self.patch_size} does not tile the hybrid stem\'s {feat} '
            f'feature map for img_size={self.img_size!r}; use patch_size=1.')
    elif h % self.patch_size or w % self.patch_size:
      p = self.patch_size
      raise ValueError(
          f'patch_size={p} does not tile img_size={self.img_size!r}: height and width '
          f'must be multiples of {p} (e.g. img_size={max(p, h // p * p)}), or choose a '
          f'patch_size dividing both {h} and {w}.')

  @nn.compact
  def __call__(self, images: jax.Array, train: bool = False) -> jax.Array:
    layers.check_image_shape(images, self.img_size, self.in_chans,
                             'vit_hybrid' if self.hybrid_depths else 'vit')
    x = images.astype(self.dtype)
    if self.hybrid_depths:
      x = resnetv2.ResNetV2(tuple(self.hybrid_depths), dtype=self.dtype, name='stem')(x)
    x = layers.PatchEmbed(self.embed_dim, self.patch_size, self.dtype, name='patch_embed')(x)
    b, gh, gw, d = x.shape
    n = gh * gw
    x = x.reshape(b, n, d)
    cls = self.param('cls_token', nn.initializers.normal(1e-6), (1, 1, d), jnp.float32)
    if self.pos_embed == 'sinusoidal':
      pos = jnp.asarray(sincos_pos_embed_2d(d, self.grid_size()))[None]
    else:
      pos = self.param('pos_embed', nn.initializers.normal(0.02), (1, 1 + n, d), jnp.float32)
    x = jnp.concatenate([jnp.broadcast_to(cls.astype(x.dtype), (b, 1, d)), x], axis=1)
    x = x + pos.astype(x.dtype)
    x = nn.Dropout(self.drop_rate)(x, deterministic=not train)

    [rates] = layers.drop_path_rates(self.drop_path_rate, (self.depth,))
    kwargs = dict(num_heads=self.num_heads, mlp_ratio=self.mlp_ratio, qkv_bias=self.qkv_bias,
                  drop_rate=self.drop_rate, deterministic=not train, dtype=self.dtype,
                  norm_eps=self.norm_eps)
    last = dict(num_queries=1) if self.pool == 'token' and not self.full_last_block else None
    x = layers.apply_blocks(Block, kwargs, x, rates, 'blocks', self.scan_blocks, self.remat,
                            last_kwargs=last)

    if self.pool == 'token':
      x = nn.LayerNorm(epsilon=self.norm_eps, dtype=self.dtype, name='norm')(x)[:, 0]
    else:
      x = nn.LayerNorm(epsilon=self.norm_eps, dtype=self.dtype,
                       name='fc_norm')(x[:, 1:].mean(axis=1))
    if self.representation_size:
      x = jnp.tanh(nn.Dense(self.representation_size, dtype=self.dtype, name='pre_logits')(x))
    x = nn.Dropout(self.drop_rate)(x, deterministic=not train)
    x = nn.Dense(self.num_classes, dtype=self.dtype, kernel_init=layers.dense_init,
                 name='head')(x)
    chex.assert_shape(x, (images.shape[0], self.num_classes))
    return layers.float_logits(x)


def _vit(patch: int, dim: int, depth: int, heads: int) -> ModelDef:
  return ModelDef('vit', VisionTransformer,
                  dict(patch_size=patch, embed_dim=dim, depth=depth, num_heads=heads))


MODELS = {
    'vit_tiny_patch16_224': _vit(16, 192, 12, 3),
    'vit_small_patch16_224': _vit(16, 384, 12, 6),
    'vit_base_patch16_224': _vit(16, 768, 12, 12),
    'vit_base_patch32_224': _vit(32, 768, 12, 12),
    'vit_large_patch16_224': _vit(16, 1024, 24, 16),
    'vit_base_r50_s16_224': ModelDef(
        'vit_hybrid', VisionTransformer,
        dict(patch_size=1, embed_dim=768, depth=12, num_heads=12, hybrid_depths=(3, 4, 9))),
}
