"""Per-pixel softmax cross-entropy on logits upsampled to the label size, with an ignore label.

SegFormer (Xie et al., 2021) and mmseg compute the loss on the decoder's
1/4-resolution logits bilinearly upsampled (half-pixel centres,
`align_corners=False`) to the label resolution:

    ℓ_b = (1 / |V_b|) Σ_{(i,j) ∈ V_b} −log softmax(up(z_b))[i, j, y_b[i, j]],
    V_b = {(i, j): y_b[i, j] ≠ 255}

one value per image (the trainer averages images). mmseg averages over all
valid pixels of the batch instead; the two agree when every image has the
same number of valid pixels (always, on `shapes` and on ADE20K crops
without ignored pixels). An image with no valid pixel has loss 0.
"""
from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import optax

from experiments.segmentation import inference
from experiments.segmentation.metrics import IGNORE_LABEL


def pixel_cross_entropy(logits: jax.Array, labels: jax.Array,
                        ignore_label: int = IGNORE_LABEL) -> jax.Array:
  """Per-image mean cross-entropy `[B]` over non-ignored pixels (see module docstring).

  Args:
    logits: `[B, h, w, K]` (any resolution; resized to the labels' `H, W`).
    labels: int `[B, H, W]` in [0, K) or `ignore_label`.
  """
  chex.assert_rank(labels, logits.ndim - 1)
  logits = inference.resize_logits(logits, labels.shape[1:])
  valid = labels != ignore_label
  safe = jnp.where(valid, labels, 0).astype(jnp.int32)
  xent = optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), safe)
  axes = tuple(range(1, labels.ndim))
  count = jnp.sum(valid, axis=axes)
  return jnp.sum(jnp.where(valid, xent, 0.0), axis=axes) / jnp.maximum(count, 1)
