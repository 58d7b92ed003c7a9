"""The SegFormer all-MLP decoder (Xie et al., NeurIPS 2021), on any feature pyramid.

Given stage maps F_1…F_n (F_1 the finest, stride 4), with C the decoder width:

    F̂_i = Upsample_{→H_1×W_1}(Linear(C_i → C)(F_i))       bilinear, half-pixel
    F   = BN(Linear(nC → C)(Concat[F̂_n, …, F̂_1]))          (bias-free; order c4…c1)
    M   = Linear(C → classes)(Dropout_{0.1}(ReLU(F)))

so the logits live at the resolution of F_1 (H/4 × W/4 for the standard
pyramids). The linears act per pixel (the reference code's 1×1 convolutions).
Bilinear upsampling uses half-pixel centres without antialiasing, which is
torch's `F.interpolate(mode='bilinear', align_corners=False)`
(docs/references.md item 10; `vision.kernels.resize_bilinear`). Nothing here
depends on the backbone: any list of NHWC maps whose spatial sizes can be
upsampled to the first map's works (MiT, Swin, PVT). Logits are float32
whatever the compute dtype.

BatchNorm follows torch's defaults (eps 1e-5, running-average momentum 0.1,
i.e. flax `momentum=0.9`); flax updates the running variance with the biased
batch variance where torch uses the unbiased one. With `train=True` the
caller must pass `mutable=['batch_stats']` (and a 'dropout' rng).
"""
from __future__ import annotations

from typing import Any, Optional, Sequence

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp

from vision import kernels
from vision import layers
from vision import pvt

Dtype = Any


# The decoder's upsampling, also used on logits by the segmentation experiments.
resize_bilinear = kernels.resize_bilinear


class AllMLPDecoder(nn.Module):
  """Per-stage Linear → upsample → concat → fuse (Linear + BN + ReLU) → classifier.

  Attributes:
    num_classes: output channels (segmentation classes).
    embed_dim: decoder width C (256 for SegFormer-B0/B1, 768 for B2–B5).
    drop_rate: dropout before the classifier (0.1 in the paper).
    bn_momentum: flax BatchNorm momentum (torch momentum 0.1 ↔ 0.9).
    bn_eps: BatchNorm eps.
    bn_axis_name: pmap axis over which BatchNorm takes its batch statistics
      (SyncBN, as SegFormer trains); None: each device's own batch.
    dtype: computation dtype.
  Parameters: `linear_c{i}` (i = 1…n), `linear_fuse` (no bias), `batch_norm`,
  `classifier`.
  """
  num_classes: int
  embed_dim: int = 256
  drop_rate: float = 0.1
  bn_momentum: float = 0.9
  bn_eps: float = 1e-5
  bn_axis_name: Optional[str] = None
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, features: Sequence[jax.Array], train: bool = False) -> jax.Array:
    """Logits [B, H_1, W_1, num_classes] from NHWC maps (finest first)."""
    if not features or any(f.ndim != 4 for f in features):
      raise ValueError(
          'AllMLPDecoder expects a non-empty list of NHWC feature maps, got shapes '
          f'{[tuple(f.shape) for f in features]}.')
    b, h, w = features[0].shape[:3]
    for f in features:
      if f.shape[0] != b:
        raise ValueError(f'Feature maps disagree on the batch size: '
                         f'{[tuple(f.shape) for f in features]}.')
    projected = []
    for i, f in enumerate(features):
      y = layers.Dense(self.embed_dim, dtype=self.dtype, kernel_init=pvt.trunc_normal_init,
                       name=f'linear_c{i + 1}')(f.astype(self.dtype))
      projected.append(resize_bilinear(y, (h, w)))
    y = jnp.concatenate(projected[::-1], axis=-1)
    y = layers.Dense(self.embed_dim, use_bias=False, dtype=self.dtype,
                     kernel_init=pvt.trunc_normal_init, name='linear_fuse')(y)
    y = nn.BatchNorm(use_running_average=not train, momentum=self.bn_momentum,
                     epsilon=self.bn_eps, dtype=self.dtype, axis_name=self.bn_axis_name,
                     name='batch_norm')(y)
    y = nn.relu(y)
    y = nn.Dropout(self.drop_rate)(y, deterministic=not train)
    logits = layers.Dense(self.num_classes, dtype=self.dtype, kernel_init=pvt.trunc_normal_init,
                          name='classifier')(y)
    chex.assert_shape(logits, (b, h, w, self.num_classes))
    return layers.float_logits(logits)
