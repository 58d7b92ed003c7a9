"""Tasks: what a model's logits mean, how they are scored in training and evaluation.

The trainer is task-agnostic: `config.task` picks one of `TASKS`, and the
task supplies

- `losses(logits, labels) -> [B]`: one data-loss value per example;
- `train_metrics(logits, labels) -> {name: [B]}`: per-example training metrics
  (averaged like the loss, logged as `train/<name>`);
- `eval_sums(logits, labels, mask, **extras) -> {name: array}`: sufficient
  statistics of one evaluation batch, summed over the masked examples (and
  then over devices and batches by the trainer), so padding never counts;
  `extras` are the eval batch's other entries (segmentation: `image_size`,
  `label_size`, to score at the original label resolution);
- `eval_metrics(sums) -> {'val/...': float}`: the final numbers from the sums;
- optionally `residuals(logits, labels) -> [B, K]` with losses = ½ Σ_k r², for
  least-squares optimizers (classification with loss l2).

A new task (e.g. segmentation with a confusion matrix for mIoU) is one more
class here with the same four methods, registered in `TASKS`.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping

import chex
import jax
import jax.numpy as jnp
import numpy as np

from experiments import losses as losses_lib
from experiments.segmentation import task as seg_task


@dataclasses.dataclass(frozen=True)
class Classification:
  """Image classification: logits `[B, K]`, integer labels `[B]` or soft targets `[B, K]`.

  Soft targets (Mixup/CutMix, experiments/mixing.py) already carry the label
  smoothing, so `label_smoothing` applies to integer labels only; train
  accuracy then compares argmax of the logits with argmax of the targets.
  Metrics: accuracy (top-1), and top-5 accuracy when K ≥ 5.
  """
  num_classes: int
  loss: str = 'softmax_xent'
  label_smoothing: float = 0.0

  def __post_init__(self):
    losses_lib.get(self.loss)  # fails early on an unknown name
    if not 0.0 <= self.label_smoothing < 1.0:
      raise ValueError(f'label_smoothing={self.label_smoothing!r}; must be in [0, 1)')
    if self.loss == 'hinge' and self.label_smoothing:
      raise ValueError(f'label_smoothing={self.label_smoothing!r} with loss=hinge; the '
                       'multiclass hinge loss takes hard labels, use 0.0')

  def losses(self, logits: jax.Array, labels: jax.Array) -> jax.Array:
    chex.assert_rank(logits, 2)
    if labels.ndim == 2:  # soft targets: smoothing already folded in
      chex.assert_equal_shape((logits, labels))
      return losses_lib.get(self.loss)(logits, labels, label_smoothing=0.0)
    chex.assert_shape(labels, logits.shape[:1])
    return losses_lib.get(self.loss)(logits, labels, label_smoothing=self.label_smoothing)

  def residuals(self, logits: jax.Array, labels: jax.Array) -> jax.Array:
    """r = s − t per example, [B, K], with loss l2 = ½‖r‖² (for least-squares optimizers)."""
    if self.loss != 'l2':
      raise ValueError(f'loss={self.loss!r} is not a sum of squares; residuals need loss=l2')
    chex.assert_rank(logits, 2)
    targets = losses_lib.smoothed_targets(labels, logits.shape[-1], self.label_smoothing)
    return logits.astype(jnp.float32) - targets

  def train_metrics(self, logits: jax.Array, labels: jax.Array) -> dict[str, jax.Array]:
    if labels.ndim == logits.ndim:  # soft targets: the dominant class
      labels = jnp.argmax(labels, axis=-1)
    return {'accuracy': (jnp.argmax(logits, axis=-1) == labels).astype(jnp.float32)}

  def eval_sums(self, logits: jax.Array, labels: jax.Array, mask: jax.Array
                ) -> dict[str, jax.Array]:
    mask = mask.astype(jnp.float32)
    plain = losses_lib.get(self.loss)(logits, labels)  # validation loss: no smoothing
    sums = {
        'loss': jnp.sum(plain * mask),
        'correct': jnp.sum((jnp.argmax(logits, axis=-1) == labels) * mask),
        'count': jnp.sum(mask),
    }
    if self.num_classes >= 5:
      _, top5 = jax.lax.top_k(logits.astype(jnp.float32), 5)
      sums['top5'] = jnp.sum(jnp.any(top5 == labels[:, None], axis=-1) * mask)
    return sums

  def eval_metrics(self, sums: Mapping[str, Any]) -> dict[str, float]:
    n = max(float(sums['count']), 1.0)
    out = {'val/loss': float(sums['loss']) / n, 'val/accuracy': float(sums['correct']) / n}
    if 'top5' in sums:
      out['val/top5'] = float(sums['top5']) / n
    return out

  def dummy_labels(self, batch: int) -> np.ndarray:
    return np.zeros((batch,), np.int32)


TASKS: dict[str, Callable[..., Any]] = {'classification': Classification,
                                        'segmentation': seg_task.Segmentation}


def create(name: str, **kwargs: Any) -> Any:
  """The task called `name`, built with `kwargs` (num_classes, loss, label_smoothing, and
  `config.task_options` such as segmentation's eval_mode/crop/stride)."""
  if name not in TASKS:
    raise ValueError(f'task={name!r} is not a known task; valid: {", ".join(sorted(TASKS))}')
  return TASKS[name](**kwargs)
