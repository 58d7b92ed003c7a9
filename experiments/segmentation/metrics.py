"""Segmentation metrics from a confusion matrix accumulated over the whole eval set.

    C[g, p] = #{pixels with ground truth g and prediction p},  g != ignore

    IoU_c   = C[c, c] / (Σ_p C[c, p] + Σ_g C[g, c] − C[c, c])   (TP / (TP + FP + FN))
    Acc_c   = C[c, c] / Σ_p C[c, p]                              (TP / GT area)
    mIoU    = nanmean_c IoU_c,   mAcc = nanmean_c Acc_c,   aAcc = Σ_c C[c, c] / Σ C

Convention (that of mmseg's `IoUMetric` and HF `evaluate`'s `mean_iou`):
pixels labelled `ignore_label` (255) are not counted at all; a class absent
from both the ground truth and the predictions has IoU 0/0 = NaN and is left
out of the mean; a class absent from the ground truth but predicted has
IoU 0 and counts; Acc_c is NaN (left out) for a class absent from the ground
truth. The matrix is summed over every batch and device before any division,
so the metrics are those of the whole set, not means of per-batch values.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

IGNORE_LABEL = 255


def confusion_matrix(labels: jax.Array, preds: jax.Array, num_classes: int,
                     weights: jax.Array | None = None,
                     ignore_label: int = IGNORE_LABEL) -> jax.Array:
  """int32 `[K, K]` counts C[g, p] over the pixels whose label is not `ignore_label`.

  Args:
    labels: int `[...]` ground truth in [0, K) or `ignore_label`.
    preds: int `[...]` predictions in [0, K), same shape.
    num_classes: K.
    weights: optional int/bool `[...]` (broadcastable) per-pixel multiplicity,
      e.g. the eval batch's example-validity mask.
    ignore_label: label value that is never counted.
  """
  labels = labels.astype(jnp.int32)
  valid = labels != ignore_label
  if weights is not None:
    valid = valid & jnp.broadcast_to(weights, labels.shape).astype(bool)
  index = jnp.where(valid, labels * num_classes + preds.astype(jnp.int32), 0)
  counts = jnp.bincount(index.reshape(-1), weights=valid.reshape(-1).astype(jnp.int32),
                        length=num_classes * num_classes)
  return counts.reshape(num_classes, num_classes).astype(jnp.int32)


def per_class_iou(confusion: np.ndarray) -> np.ndarray:
  """IoU_c = TP / (TP + FP + FN), NaN where the class is in neither GT nor predictions."""
  c = np.asarray(confusion, np.float64)
  tp = np.diag(c)
  union = c.sum(axis=1) + c.sum(axis=0) - tp
  with np.errstate(invalid='ignore', divide='ignore'):
    return np.where(union > 0, tp / np.where(union > 0, union, 1.0), np.nan)


def per_class_accuracy(confusion: np.ndarray) -> np.ndarray:
  """Acc_c = TP / GT area, NaN where the class is absent from the ground truth."""
  c = np.asarray(confusion, np.float64)
  area = c.sum(axis=1)
  return np.where(area > 0, np.diag(c) / np.where(area > 0, area, 1.0), np.nan)


def _nanmean(x: np.ndarray) -> float:
  x = x[~np.isnan(x)]
  return float(x.mean()) if x.size else float('nan')


def summarize(confusion: np.ndarray) -> dict[str, float | np.ndarray]:
  """mIoU, pixel accuracy, mean class accuracy and the per-class arrays of a confusion matrix."""
  c = np.asarray(confusion, np.float64)
  if c.ndim != 2 or c.shape[0] != c.shape[1]:
    raise ValueError(f'confusion has shape {c.shape}; expected a square [K, K] matrix')
  iou, acc = per_class_iou(c), per_class_accuracy(c)
  total = c.sum()
  return {
      'miou': _nanmean(iou),
      'pixel_accuracy': float(np.trace(c) / total) if total else float('nan'),
      'mean_accuracy': _nanmean(acc),
      'iou': iou,
      'accuracy': acc,
  }
