r"""PVT-Tiny from scratch on CIFAR-10 (32×32, stage patches 2-2-2-2).

    python -m experiments.main --config=experiments/configs/pvt_cifar10.py --workdir=/tmp/pvt_c10

Recipe: PVT-Tiny (dims 64-128-320-512, depths 2-2-2-2, SR ratios 8-4-2-1)
with 2×2 patch embeddings in every stage so the pyramid is 16², 8², 4², 2²
tokens; AdamW (lr 1e-3, weight decay 0.05), 10 warmup epochs, cosine over
200 epochs, batch 128, label smoothing 0.1, drop path 0.1; CIFAR crop + flip.

Result: not measured here (CIFAR-10 needs a download; no network on this
machine). The PVT paper reports ImageNet, COCO and ADE20K only.
"""
from __future__ import annotations

import ml_collections

from experiments.configs import cifar10_common
from experiments.configs import common


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """`runlocal`."""
  args = common.parse_arg(arg, runlocal=False)
  c = cifar10_common.cifar10_config(
      'pvt_tiny', dict(patch_sizes=(2, 2, 2, 2), drop_path_rate=0.1))
  if args.runlocal:
    common.runlocal(c, steps=4, batch_size=16)
    c.model.overrides.depths = (1, 1, 1, 1)
    c.model.overrides.embed_dims = (16, 32, 80, 128)
  return c
