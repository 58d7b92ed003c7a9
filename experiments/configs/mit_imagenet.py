r"""Mix Transformer (MiT, the SegFormer encoder) classifiers on ImageNet-1k.

    python -m experiments.main --config=experiments/configs/mit_imagenet.py:variant=b2 \
        --workdir=/tmp/mit_b2 --config.data.data_dir=/path/to/tensorflow_datasets

SegFormer (Xie et al. 2021) pre-trains its MiT-B0…B5 encoders on ImageNet-1k
before segmentation; the recipe here is the DeiT/PVT one of
`imagenet_common.py` (AdamW 5e-4·batch/512, weight decay 0.05, 300 epochs,
5 warmup epochs, cosine, label smoothing 0.1) with stochastic depth 0.1 and
DeiT's augmentation and regularization
(`deit_small_imagenet.add_deit_regularization`), as PVT's code, which
SegFormer's pre-training builds on, trains.

Result: the SegFormer paper reports segmentation only (ADE20K mIoU: B0 37.4
… B5 51.0, single scale); it gives no ImageNet top-1 for the MiT encoders,
so there is no paper number to quote. Not run here (no ImageNet on this
machine).
"""
from __future__ import annotations

import ml_collections

from experiments.configs import common
from experiments.configs import imagenet_common
from experiments.configs.deit_small_imagenet import add_deit_regularization

VARIANTS = ('b0', 'b1', 'b2', 'b3', 'b4', 'b5')


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """`variant=b2,runlocal`."""
  args = common.parse_arg(arg, variant='b2', runlocal=False)
  if args.variant not in VARIANTS:
    raise ValueError(f'variant={args.variant!r}; valid: {", ".join(VARIANTS)}')
  return add_deit_regularization(imagenet_common.imagenet_config(
      f'mit_{args.variant}', dict(drop_path_rate=0.1), runlocal=args.runlocal,
      runlocal_overrides=dict(embed_dims=(16, 32, 80, 128), depths=(1, 1, 1, 1))))
