r"""DeiT-S on ImageNet-1k from scratch with DeiT's full recipe (Touvron et al. 2021, Table 9).

    python -m experiments.main --config=experiments/configs/deit_small_imagenet.py \
        --workdir=/tmp/deit_s --config.data.data_dir=/path/to/tensorflow_datasets
    python -m experiments.main --config=experiments/configs/deit_small_imagenet.py:runlocal ...

Recipe (DeiT Table 9): ViT-S/16 (D=384, 6 heads, depth 12), 300 epochs,
batch 1024, AdamW with lr 5e-4 × batch/512 (1e-3 here), weight decay 0.05,
5 linear warmup epochs then cosine decay to 1e-5, label smoothing 0.1, no
dropout, stochastic depth 0.1, no gradient clipping; inception crop + flip
at 224 (eval: central 87.5% crop); RandAugment 'rand-m9-mstd0.5-inc1' with
bicubic resampling; Mixup α = 0.8 and CutMix α = 1.0 (per batch, switch
probability 0.5, as DeiT's defaults); random erasing p = 0.25 (mode
'pixel'). DeiT's repeated augmentation is not implemented in this pipeline;
DeiT's ablation (Table 8) finds it helps DeiT-B. DeiT's code keeps an EMA
of the weights (0.99996) but reports the raw weights; `ema.decay` is None
here (set it to evaluate `val_ema/*` too).

Result (paper, Table 7): DeiT-S top-1 79.8% on ImageNet-1k val at 224.
Not run here (ImageNet is not on this machine).

Recipe keys (in every config's schema, off by default): `data.randaugment`,
`data.randaugment_interpolation`, `data.random_erasing`, `data.cutout`
(experiments/data/config.py), `mixup.*` (experiments/mixing.py), `ema.*`,
`polyak.*` (experiments/weight_averaging.py), `early_stopping.*`
(experiments/early_stopping.py).
"""
from __future__ import annotations

import ml_collections

from experiments.configs import common
from experiments.configs import imagenet_common


def add_deit_regularization(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """DeiT's augmentation and regularization (Table 9) on top of an ImageNet config."""
  c.data.randaugment = 'rand-m9-mstd0.5-inc1'
  c.data.randaugment_interpolation = 'bicubic'
  c.data.random_erasing = 0.25
  c.data.cutout = 0
  c.mixup.mixup_alpha = 0.8
  c.mixup.cutmix_alpha = 1.0
  c.mixup.prob = 1.0
  c.mixup.switch_prob = 0.5
  c.mixup.mode = 'batch'
  c.label_smoothing = 0.1
  return c


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """`runlocal` shrinks the model, the images and the run."""
  args = common.parse_arg(arg, runlocal=False)
  c = imagenet_common.imagenet_config(
      'vit_small_patch16_224', dict(drop_path_rate=0.1), batch_size=1024, epochs=300.0,
      warmup_epochs=5.0, runlocal=args.runlocal,
      runlocal_overrides=dict(embed_dim=48, depth=2, num_heads=3))
  c.optimizer.learning_rate = 5e-4 * c.batch_size / 512
  return add_deit_regularization(c)
