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

from experiments.configs import cifar10_common
from experiments.configs import common


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """`depth=9,runlocal`."""
  args = common.parse_arg(arg, depth=9, runlocal=False)
  c = cifar10_common.cifar10_config(
      'vit_tiny_patch16_224', dict(patch_size=4, depth=args.depth, drop_path_rate=0.1),
      grad_clip_norm=1.0)
  if args.runlocal:
    common.runlocal(c, steps=4, batch_size=16)
    c.model.overrides.depth = 2
    c.model.overrides.embed_dim = 48
  return c
