r"""Swin Transformer on ImageNet-1k: the Swin paper's recipe (Liu et al. 2021, §4.1).

    python -m experiments.main --config=experiments/configs/swin_imagenet.py:variant=T \
        --workdir=/tmp/swin_t --config.data.data_dir=/path/to/tensorflow_datasets

AdamW, batch 1024, lr 1e-3, weight decay 0.05, 300 epochs with 20 linear
warmup epochs and cosine decay, gradient clipping at 5.0, label smoothing
0.1, stochastic depth 0.2 / 0.3 / 0.5 for T / S / B; inception crop at 224;
and, as the paper says (§4.1, "most of the augmentation and regularization
strategies of DeiT ... but not repeated augmentation and EMA"), DeiT's
RandAugment 'rand-m9-mstd0.5-inc1', Mixup 0.8, CutMix 1.0 and random
erasing 0.25 (`deit_small_imagenet.add_deit_regularization`).

Result (paper, Table 1a, ImageNet-1k at 224): top-1 Swin-T 81.3,
Swin-S 83.0, Swin-B 83.5. Not run here (ImageNet is not on this machine).
"""
from __future__ import annotations

import ml_collections

from experiments.configs import common
from experiments.configs import imagenet_common
from experiments.configs.deit_small_imagenet import add_deit_regularization

VARIANTS = {
    'T': ('swin_tiny_patch4_window7_224', 0.2),
    'S': ('swin_small_patch4_window7_224', 0.3),
    'B': ('swin_base_patch4_window7_224', 0.5),
}


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """`variant=T,runlocal`."""
  args = common.parse_arg(arg, variant='T', runlocal=False)
  if args.variant not in VARIANTS:
    raise ValueError(f'variant={args.variant!r}; valid: {", ".join(VARIANTS)}')
  name, drop_path = VARIANTS[args.variant]
  c = imagenet_common.imagenet_config(
      name, dict(drop_path_rate=drop_path), warmup_epochs=20.0, grad_clip_norm=5.0,
      runlocal=args.runlocal,
      runlocal_overrides=dict(embed_dim=24, depths=(1, 1, 1, 1), window_size=2))
  c.optimizer.learning_rate = 1e-3 * c.batch_size / 1024
  return add_deit_regularization(c)
