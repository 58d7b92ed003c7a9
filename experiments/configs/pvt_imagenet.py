r"""PVT v1 on ImageNet-1k: the PVT paper's recipe (Wang et al. 2021, §5.1 — DeiT's).

    python -m experiments.main --config=experiments/configs/pvt_imagenet.py:variant=small \
        --workdir=/tmp/pvt_s --config.data.data_dir=/path/to/tensorflow_datasets

The DeiT recipe of `imagenet_common.py`
(lr 5e-4·batch/512, weight decay 0.05, 300 epochs, 5 warmup epochs, cosine,
label smoothing 0.1) with stochastic depth 0.1; inception crop at 224; and
DeiT's augmentation, which PVT §5.1 adopts (random erasing, Mixup, CutMix;
RandAugment as in DeiT's code it builds on):
`deit_small_imagenet.add_deit_regularization`.

Result (paper, Table 2): top-1 PVT-Tiny 75.1, Small 79.8, Medium 81.2,
Large 81.7. Not run here (ImageNet is not on this machine).
"""
from __future__ import annotations

import ml_collections

from experiments.configs import common
from experiments.configs import imagenet_common
from experiments.configs.deit_small_imagenet import add_deit_regularization

VARIANTS = ('tiny', 'small', 'medium', 'large')


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """`variant=small,runlocal`."""
  args = common.parse_arg(arg, variant='small', runlocal=False)
  if args.variant not in VARIANTS:
    raise ValueError(f'variant={args.variant!r}; valid: {", ".join(VARIANTS)}')
  return add_deit_regularization(imagenet_common.imagenet_config(
      f'pvt_{args.variant}', dict(drop_path_rate=0.1), runlocal=args.runlocal,
      runlocal_overrides=dict(embed_dims=(16, 32, 80, 128), depths=(1, 1, 1, 1))))
