"""The ImageNet-1k recipe the ViT-family papers share (DeiT, Touvron et al. 2021, Table 9).

AdamW with lr 5e-4 × batch/512, weight decay 0.05, 300 epochs, 5 warmup
epochs and cosine decay, label smoothing 0.1, stochastic depth, inception
crop + flip at 224. DeiT's augmentation and regularization (RandAugment,
Mixup, CutMix, random erasing) are added on top by
`deit_small_imagenet.add_deit_regularization`, which the configs whose
papers trained with DeiT's recipe call (ViT/DeiT, PVT, MiT, Swin). DeiT's
repeated augmentation is not implemented.
"""
from __future__ import annotations

from typing import Any

import ml_collections

from experiments.configs import common


def imagenet_config(model: str, overrides: dict[str, Any], *, batch_size: int = 1024,
                    epochs: float = 300.0, warmup_epochs: float = 5.0,
                    grad_clip_norm: float | None = None, runlocal: bool = False,
                    runlocal_overrides: dict[str, Any] | None = None,
                    runlocal_size: int = 64) -> ml_collections.ConfigDict:
  """The DeiT recipe for `model`; `runlocal` shrinks model, images and run."""
  c = common.base_config()
  c.model.name = model
  c.model.overrides = ml_collections.ConfigDict(overrides)
  c.data.name = 'imagenet2012'
  c.data.image_size = 224
  c.data.augment = 'inception'
  c.data.train_split = 'train'
  c.data.eval_split = 'validation'
  c.batch_size = batch_size
  c.total_epochs = epochs
  c.optimizer.name = 'adamw'
  c.optimizer.learning_rate = 5e-4 * batch_size / 512
  c.optimizer.weight_decay = 0.05
  c.schedule.name = 'cosine'
  c.schedule.warmup_epochs = warmup_epochs
  c.schedule.end_value = 1e-5
  c.grad_clip_norm = grad_clip_norm
  c.label_smoothing = 0.1
  c.log_every = 100
  c.eval_every = 5000
  c.checkpoint_every = 5000
  if runlocal:
    common.runlocal(c, steps=4, batch_size=16)
    c.data.image_size = runlocal_size
    for key, value in (runlocal_overrides or {}).items():
      c.model.overrides[key] = value
  return c
