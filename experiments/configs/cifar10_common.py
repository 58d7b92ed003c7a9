"""The from-scratch CIFAR-10 recipe the small-image transformer configs share.

AdamW (lr 1e-3, weight decay 0.05) for 200 epochs of batch 128, 10 warmup
epochs then cosine decay, label smoothing 0.1, the CIFAR pad-and-crop + flip
augmentation at 32×32; stochastic depth and gradient clipping are the
model's choice.
"""
from __future__ import annotations

from typing import Any, Optional

import ml_collections

from experiments.configs import common


def cifar10_config(model: str, overrides: dict[str, Any],
                   grad_clip_norm: Optional[float] = None) -> ml_collections.ConfigDict:
  """The recipe for `model` with its `model.overrides`."""
  c = common.base_config()
  c.model.name = model
  c.model.overrides = ml_collections.ConfigDict(overrides)
  c.data.name = 'cifar10'
  c.data.image_size = 32
  c.data.augment = 'cifar'
  c.batch_size = 128
  c.total_epochs = 200.0
  c.optimizer.name = 'adamw'
  c.optimizer.learning_rate = 1e-3
  c.optimizer.weight_decay = 0.05
  c.schedule.name = 'cosine'
  c.schedule.warmup_epochs = 10.0
  c.grad_clip_norm = grad_clip_norm
  c.label_smoothing = 0.1
  c.log_every = 100
  c.eval_every = 2000
  c.checkpoint_every = 2000
  return c
