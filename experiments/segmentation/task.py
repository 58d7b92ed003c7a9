"""The segmentation task: logits `[B, h, w, K]`, label maps `[B, H, W]` (255 = ignore).

Plugs into the task-agnostic trainer (`experiments/tasks.py`) with the four
methods every task has, plus `predict`, the eval-time forward pass:

- `losses`: per-image pixel cross-entropy on logits upsampled to the label
  size (`losses.py`);
- `train_metrics`: per-image pixel accuracy over non-ignored pixels;
- `predict(apply_fn, images)`: whole-image (`eval_mode='whole'`) or
  sliding-window (`eval_mode='slide'`, `crop`, `stride`) logits;
- `eval_sums`: the `[K, K]` confusion matrix of the masked examples (summed
  by the trainer over devices and batches), the loss sum and the count, at
  the original label resolution when the batch says where each image lies in
  the canvas (`image_size`) and how large its labels are (`label_size`):
  the valid logits block is resized back to the labels
  (`inference.resize_to_labels`), as mmseg's `postprocess_result`;
- `eval_metrics`: `val/miou`, `val/pixel_accuracy`, `val/mean_accuracy`,
  `val/loss` from the whole-set matrix (`metrics.py` states the convention).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from experiments.segmentation import inference
from experiments.segmentation import losses as seg_losses
from experiments.segmentation import metrics as seg_metrics

EVAL_MODES = ('whole', 'slide')


@dataclasses.dataclass(frozen=True)
class Segmentation:
  """Semantic segmentation with an ignore label (see module docstring).

  Attributes:
    num_classes: K; labels are in [0, K) or `ignore_label`.
    loss: only 'softmax_xent' (pixel-wise).
    label_smoothing: must be 0 (not used by SegFormer).
    ignore_label: label value excluded from loss and metrics.
    loss_average: per-image loss over its 'valid' pixels, or over 'all' pixels
      (ignored ones as 0; mmseg's default, `losses.py`). `val/loss` is always
      the per-image mean over valid pixels.
    eval_mode: 'whole' or 'slide'.
    crop, stride: sliding-window size and stride `(h, w)` for 'slide'.
  """
  num_classes: int
  loss: str = 'softmax_xent'
  label_smoothing: float = 0.0
  ignore_label: int = seg_metrics.IGNORE_LABEL
  loss_average: str = 'valid'
  eval_mode: str = 'whole'
  crop: Optional[Sequence[int]] = None
  stride: Optional[Sequence[int]] = None

  def __post_init__(self):
    if self.loss != 'softmax_xent':
      raise ValueError(f"loss={self.loss!r}; the segmentation task supports 'softmax_xent'")
    if self.label_smoothing:
      raise ValueError(f'label_smoothing={self.label_smoothing!r}; segmentation uses 0.0')
    if self.num_classes < 1 or 0 <= self.ignore_label < self.num_classes:
      raise ValueError(f'num_classes={self.num_classes}, ignore_label={self.ignore_label}: '
                       'need num_classes >= 1 and an ignore label outside [0, num_classes)')
    if self.loss_average not in seg_losses.AVERAGES:
      raise ValueError(f'loss_average={self.loss_average!r}; valid: '
                       f'{", ".join(seg_losses.AVERAGES)}')
    if self.eval_mode not in EVAL_MODES:
      raise ValueError(f'eval_mode={self.eval_mode!r}; valid: {", ".join(EVAL_MODES)}')
    if self.eval_mode == 'slide' and (self.crop is None or self.stride is None):
      raise ValueError(f"eval_mode='slide' needs crop and stride (got crop={self.crop!r}, "
                       f'stride={self.stride!r})')

  def losses(self, logits: jax.Array, labels: jax.Array) -> jax.Array:
    return seg_losses.pixel_cross_entropy(logits, labels, self.ignore_label, self.loss_average)

  def train_metrics(self, logits: jax.Array, labels: jax.Array) -> dict[str, jax.Array]:
    axes = tuple(range(1, labels.ndim))
    correct, count = 0, 0
    for z, y in inference.label_pairs(logits, labels):
      valid = y != self.ignore_label
      correct = correct + jnp.sum((jnp.argmax(z, axis=-1) == y) & valid, axis=axes)
      count = count + jnp.sum(valid, axis=axes)
    return {'accuracy': correct / jnp.maximum(count, 1)}

  def predict(self, apply_fn: inference.ApplyFn, images: jax.Array) -> jax.Array:
    """Eval logits for `images` (the trainer resizes nothing; `eval_sums` does)."""
    if self.eval_mode == 'slide':
      return inference.slide_inference(apply_fn, images, self.crop, self.stride)
    return inference.whole_inference(apply_fn, images)

  def eval_sums(self, logits: jax.Array, labels: jax.Array, mask: jax.Array,
                image_size: Optional[jax.Array] = None,
                label_size: Optional[jax.Array] = None) -> dict[str, jax.Array]:
    """Sums of one eval batch; `image_size`/`label_size` int `[B, 2]` (see module docstring)."""
    if (image_size is None) != (label_size is None):
      raise ValueError('eval_sums needs both image_size and label_size, or neither')
    if image_size is None:
      logits = inference.at_label_size(logits, labels)
    else:
      logits = inference.resize_to_labels(logits, image_size, label_size, labels.shape[1:3])
    mask_f = mask.astype(jnp.float32)
    loss = seg_losses.pixel_cross_entropy(logits, labels, self.ignore_label)
    pixel_mask = mask.reshape(mask.shape + (1,) * (labels.ndim - 1))
    return {
        'confusion': seg_metrics.confusion_matrix(labels, jnp.argmax(logits, axis=-1),
                                                  self.num_classes, pixel_mask,
                                                  self.ignore_label),
        'loss': jnp.sum(loss * mask_f),
        'count': jnp.sum(mask_f),
    }

  def eval_metrics(self, sums: Mapping[str, Any]) -> dict[str, float]:
    s = seg_metrics.summarize(np.asarray(sums['confusion']))
    n = max(float(sums['count']), 1.0)
    return {'val/loss': float(sums['loss']) / n, 'val/miou': s['miou'],
            'val/pixel_accuracy': s['pixel_accuracy'], 'val/mean_accuracy': s['mean_accuracy']}

  def dummy_labels(self, batch: int, size: Sequence[int] = (1, 1)) -> np.ndarray:
    return np.zeros((batch, *size), np.int32)
