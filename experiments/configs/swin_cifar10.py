r"""Swin-T from scratch on CIFAR-10 (32×32, 2×2 patches, 4×4 windows).

    python -m experiments.main --config=experiments/configs/swin_cifar10.py --workdir=/tmp/swin_c10

Recipe: Swin-T widths and depths (C=96, depths 2-2-6-2, heads 3-6-12-24)
adapted to 32×32 images: patch 2 (16×16 tokens), window 4, so the four
stages see 16², 8², 4², 2² tokens. AdamW (lr 1e-3, weight decay 0.05), 10
warmup epochs, cosine over 200 epochs, batch 128, label smoothing 0.1, drop
path 0.2, gradient clipping at 5.0 (as the Swin paper); CIFAR crop + flip.

Result: not measured here (CIFAR-10 needs a download; no network on this
machine). The Swin paper reports ImageNet/COCO/ADE20K only, so there is no
paper number for CIFAR-10 from scratch.
"""
from __future__ import annotations

import ml_collections

from experiments.configs import cifar10_common
from experiments.configs import common


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """`runlocal`."""
  args = common.parse_arg(arg, runlocal=False)
  c = cifar10_common.cifar10_config(
      'swin_tiny_patch4_window7_224', dict(patch_size=2, window_size=4, drop_path_rate=0.2),
      grad_clip_norm=5.0)
  if args.runlocal:
    common.runlocal(c, steps=4, batch_size=16)
    c.model.overrides.depths = (1, 1, 1, 1)
    c.model.overrides.embed_dim = 24
  return c
