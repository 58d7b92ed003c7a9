r"""ViT (DeiT) on ImageNet-1k from scratch: the DeiT recipe.

    python -m experiments.main --config=experiments/configs/vit_imagenet.py:variant=S/16 \
        --workdir=/tmp/deit_s --config.data.data_dir=/path/to/tensorflow_datasets

Variants Ti/16, S/16 (default), B/16, B/32, L/16; drop path 0.0 (Ti),
0.1 (S, B/32), 0.1 (B), 0.2 (L) — DeiT uses 0.1 for all but Ti. Recipe in
`imagenet_common.py` (AdamW 5e-4·batch/512, wd 0.05, 300 epochs, 5 warmup,
cosine, label smoothing 0.1, inception crop) with DeiT's augmentation and
regularization (`deit_small_imagenet.add_deit_regularization`: RandAugment
rand-m9-mstd0.5-inc1, Mixup 0.8, CutMix 1.0, random erasing 0.25).

Result (paper, DeiT Table 7): top-1 DeiT-Ti 72.2,
DeiT-S 79.8, DeiT-B 81.8. Not run here (ImageNet is not on this machine).
"""
from __future__ import annotations

import ml_collections

from experiments.configs import common
from experiments.configs import imagenet_common
from experiments.configs.deit_small_imagenet import add_deit_regularization

VARIANTS = {
    'Ti/16': ('vit_tiny_patch16_224', 0.0),
    'S/16': ('vit_small_patch16_224', 0.1),
    'B/16': ('vit_base_patch16_224', 0.1),
    'B/32': ('vit_base_patch32_224', 0.1),
    'L/16': ('vit_large_patch16_224', 0.2),
}


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """`variant=S/16,runlocal`."""
  args = common.parse_arg(arg, variant='S/16', runlocal=False)
  if args.variant not in VARIANTS:
    raise ValueError(f'variant={args.variant!r}; valid: {", ".join(VARIANTS)}')
  name, drop_path = VARIANTS[args.variant]
  return add_deit_regularization(imagenet_common.imagenet_config(
      name, dict(drop_path_rate=drop_path), runlocal=args.runlocal,
      runlocal_overrides=dict(embed_dim=48, depth=2, num_heads=3)))
