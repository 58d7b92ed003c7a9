"""Per-pixel softmax cross-entropy on logits upsampled to the label size, with an ignore label.

SegFormer (Xie et al., 2021) and mmseg compute the loss on the decoder's
1/4-resolution logits bilinearly upsampled (half-pixel centres,
`align_corners=False`) to the label resolution:

    ℓ_b = (1 / |V_b|) Σ_{(i,j) ∈ V_b} −log softmax(up(z_b))[i, j, y_b[i, j]],
    V_b = {(i, j): y_b[i, j] ≠ 255}

one value per image (the trainer averages images): `average='valid'`. mmseg
averages over all valid pixels of the batch instead (`avg_non_ignore=True`);
the two agree when every image has the same number of valid pixels (always
on `shapes`). With `average='all'` the denominator is every pixel, H·W,
ignored ones counting as zero loss:

    ℓ_b = (1 / (H W)) Σ_{(i,j) ∈ V_b} −log softmax(up(z_b))[i, j, y_b[i, j]]

so the trainer's mean over images is exactly the mean over every pixel of
the batch, mmseg's default `CrossEntropyLoss(avg_non_ignore=False)` (mmseg
0.x, the SegFormer paper's code, and 1.x), which the ADE20K config uses. An
image with no valid pixel has loss 0.
"""
from __future__ import annotations

import math

import chex
import jax
import jax.numpy as jnp
import optax

from experiments.segmentation import inference
from experiments.segmentation.metrics import IGNORE_LABEL


AVERAGES = ('valid', 'all')


def pixel_cross_entropy(logits: jax.Array, labels: jax.Array,
                        ignore_label: int = IGNORE_LABEL, average: str = 'valid') -> jax.Array:
  """Per-image cross-entropy `[B]` (see module docstring).

  Args:
    logits: `[B, h, w, K]` (any resolution; resized to the labels' `H, W`).
    labels: int `[B, H, W]` in [0, K) or `ignore_label`.
    ignore_label: label value with no loss.
    average: 'valid' (mean over the image's non-ignored pixels) or 'all'
      (sum over them divided by every pixel of the image, mmseg's default).
  """
  chex.assert_rank(labels, logits.ndim - 1)
  if average not in AVERAGES:
    raise ValueError(f'average={average!r}; valid: {", ".join(AVERAGES)}')
  axes = tuple(range(1, labels.ndim))
  total, count = 0.0, 0
  for z, y in inference.label_pairs(logits, labels):
    valid = y != ignore_label
    safe = jnp.where(valid, y, 0).astype(jnp.int32)
    xent = optax.softmax_cross_entropy_with_integer_labels(z.astype(jnp.float32), safe)
    total = total + jnp.sum(jnp.where(valid, xent, 0.0), axis=axes)
    count = count + jnp.sum(valid, axis=axes)
  if average == 'all':
    return total / math.prod(labels.shape[1:])
  return total / jnp.maximum(count, 1)
