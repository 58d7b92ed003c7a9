r"""ViT from scratch on CIFAR-10 (32×32, 4×4 patches → 64 tokens).

    python -m experiments.main --config=experiments/configs/vit_cifar10.py --workdir=/tmp/vit_c10
    python -m experiments.main --config=experiments/configs/vit_cifar10.py:depth=6,runlocal ...

Recipe: ViT-Ti width (D=192, 3 heads, MLP 4·D), `depth` blocks (default 9),
4×4 patches; AdamW (lr 1e-3, weight decay 0.05) with 10 warmup epochs and
cosine decay over 200 epochs, batch 128, label smoothing 0.1, drop path 0.1,
gradient clipping at 1.0; random crop with 4-pixel padding and flips.

Result: not measured here (CIFAR-10 is a TFDS download and this machine has
no network). The ViT and DeiT papers report CIFAR-10 only for transfer from
ImageNet pretraining, not for training from scratch, so there is no paper
number for this exact setting.
"""
from __future__ import annotations

import ml_collections

from experiments.configs import common


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """`depth=9,runlocal`."""
  args = common.parse_arg(arg, depth=9, runlocal=False)
  c = common.base_config()
  c.model.name = 'vit_tiny_patch16_224'
  c.model.overrides = ml_collections.ConfigDict(dict(
      patch_size=4, depth=args.depth, drop_path_rate=0.1))
  c.data.name = 'cifar10'
  c.data.image_size = 32
  c.data.augment = 'cifar'
  c.data.eval_split = 'test'
  c.batch_size = 128
  c.total_epochs = 200.0
  c.optimizer.name = 'adamw'
  c.optimizer.learning_rate = 1e-3
  c.optimizer.weight_decay = 0.05
  c.schedule.name = 'cosine'
  c.schedule.warmup_epochs = 10.0
  c.grad_clip_norm = 1.0
  c.label_smoothing = 0.1
  c.log_every = 100
  c.eval_every = 2000
  c.checkpoint_every = 2000
  if args.runlocal:
    common.runlocal(c, steps=4, batch_size=16)
    c.model.overrides.depth = 2
    c.model.overrides.embed_dim = 48
  return c
