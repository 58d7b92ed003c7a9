"""ResNetV2 feature extractor: the convolutional stem of the hybrid ViT.

Dosovitskiy et al. (ICLR 2021, §3.1 "Hybrid Architecture") feed ViT with the
stride-16 feature map of a ResNet-50 whose BatchNorms are GroupNorms and
whose convolutions are weight-standardised (BiT, Kolesnikov et al. 2020), cut
after its third stage, so the stage depths are (3, 4, 9) instead of
(3, 4, 6, 3).

* StdConv (Qiao et al. 2019): the kernel of each output channel o is
  standardised before use, Ŵ_o = (W_o − mean(W_o)) / √(var(W_o) + ε) over its
  kh·kw·C_in weights (biased variance, ε = 1e-8).
* GroupNorm (Wu & He 2018): 32 groups, ε = 1e-5.
* Stem: StdConv 7×7/2 (64) → GroupNorm → ReLU → max-pool 3×3/2, all with
  TF "SAME" padding (pad total max((⌈n/s⌉−1)·s + k − n, 0), the smaller half
  first), as in HF `BitModel(global_padding='SAME')` and timm.
* Stages of non-pre-activation bottlenecks (v1.5: stride on the 3×3 conv):
  y = ReLU(x' + GN(conv1×1(ReLU(GN(conv3×3/s(ReLU(GN(conv1×1(x)))))))),
  with x' = GN(StdConv1×1/s(x)) in each stage's first block and x' = x after.
  Widths 256·2^i out, a quarter of that inside; stride 1 in stage 1, 2 after.
"""
from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

Dtype = Any


class StdConv(nn.Module):
  """Weight-standardised conv, bias-free, TF 'SAME' padding, HWIO kernel."""
  features: int
  kernel_size: int
  strides: int = 1
  eps: float = 1e-8
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    k = self.kernel_size
    w = self.param('kernel', nn.initializers.he_normal(),
                   (k, k, x.shape[-1], self.features), jnp.float32)
    mean = w.mean(axis=(0, 1, 2), keepdims=True)
    var = w.var(axis=(0, 1, 2), keepdims=True)
    w = (w - mean) * jax.lax.rsqrt(var + self.eps)
    return jax.lax.conv_general_dilated(
        x.astype(self.dtype), w.astype(self.dtype), (self.strides,) * 2, 'SAME',
        dimension_numbers=('NHWC', 'HWIO', 'NHWC'))


def _group_norm(name: str, dtype: Dtype, zero_init: bool = False) -> nn.GroupNorm:
  return nn.GroupNorm(num_groups=32, epsilon=1e-5, dtype=dtype, name=name,
                      scale_init=nn.initializers.zeros if zero_init else nn.initializers.ones)


class Bottleneck(nn.Module):
  """Non-pre-activation bottleneck with the stride on the 3×3 conv."""
  features: int
  strides: int = 1
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    mid = self.features // 4
    shortcut = x
    if x.shape[-1] != self.features or self.strides != 1:
      shortcut = StdConv(self.features, 1, self.strides, dtype=self.dtype,
                         name='downsample_conv')(x)
      shortcut = _group_norm('downsample_norm', self.dtype)(shortcut)
    y = StdConv(mid, 1, dtype=self.dtype, name='conv1')(x)
    y = nn.relu(_group_norm('norm1', self.dtype)(y))
    y = StdConv(mid, 3, self.strides, dtype=self.dtype, name='conv2')(y)
    y = nn.relu(_group_norm('norm2', self.dtype)(y))
    y = StdConv(self.features, 1, dtype=self.dtype, name='conv3')(y)
    y = _group_norm('norm3', self.dtype, zero_init=True)(y)
    return nn.relu(y + shortcut)


class ResNetV2(nn.Module):
  """Stem + bottleneck stages; returns the last stage's [B, H/s, W/s, 256·2^(n−1)] map.

  s = 4·2^(n−1) for n = len(depths) stages (16 for the hybrid's (3, 4, 9)).
  """
  depths: Sequence[int] = (3, 4, 9)
  stem_width: int = 64
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    x = StdConv(self.stem_width, 7, 2, dtype=self.dtype, name='stem_conv')(x)
    x = nn.relu(_group_norm('stem_norm', self.dtype)(x))
    x = nn.max_pool(x, (3, 3), (2, 2), padding='SAME')
    for i, depth in enumerate(self.depths):
      for j in range(depth):
        x = Bottleneck(256 * 2 ** i, strides=2 if (i > 0 and j == 0) else 1,
                       dtype=self.dtype, name=f'stages_{i}_{j}')(x)
    return x


def feature_size(n: int, num_stages: int) -> int:
  """Output side of `ResNetV2` for input side n: ⌈n/2⌉ (conv), ⌈·/2⌉ (pool), then per stage."""
  n = -(-n // 2)
  n = -(-n // 2)
  for _ in range(num_stages - 1):
    n = -(-n // 2)
  return n
