r"""SegFormer-B0 on the generated `shapes` data (no download): the offline segmentation run.

    python -m experiments.main --config=experiments/configs/segformer_shapes.py --workdir=/tmp/seg_shapes
    python -m experiments.main --config=experiments/configs/segformer_shapes.py:runlocal --workdir=/tmp/s
    ... --config.model.overrides.backbone=pvt_small      # same decoder on another pyramid

Data: 2000 train / 250 test 64×64 images of 4 shape classes + background
(`experiments/data/shapes.py`), mmseg train augmentation (random rescale
0.5–2.0, 64×64 crop with cat_max_ratio 0.75, flip, photometric distortion),
whole-image eval at the label resolution. Model: `segformer_b0` from scratch
(random init, 3.7M parameters), AdamW 1e-3 with warmup and poly decay
(power 1; the paper's recipe uses 6e-5 with ImageNet-pretrained encoders;
from scratch a higher rate is needed), batch 32, 800 steps (12.8 epochs).

RESULT (measured 2026-12-02 on the 2-core development machine, an AMD EPYC
with AVX-512, idle, first command above): val/miou 0.8517 after 800 steps (pixel accuracy 0.946,
mean class accuracy 0.929), the whole command taking 8 min 49 s wall
(523 s in the loop: ~1.5 steps/s, 49 images/s, compile included); mIoU
0.735 at step 200, 0.813 at 400, 0.846 at 600. With `--config.seed=1`:
0.8471 in 9 min 15 s. (Before crops were padded as mmseg pads, with the
normalized mean after the photometric step, padding was black and
distorted, and the same command reached 0.8926 in 9 min 06 s on an earlier,
faster host; the padding is now faithful, the target is met either way.) Before the trainer unrolled its
micro-batch loop on CPU a step took ~18 s (XLA:CPU's slow convolutions
inside loop bodies, jax-ml/jax#12868) and this run could not finish in time.
"""
from __future__ import annotations

import ml_collections

from experiments.configs import common

RESULT = 'val/miou 0.8517 at step 800 in 8 min 49 s wall (2-core CPU); target >= 0.80 in 10 min'


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """The shapes config; `runlocal` makes it a smoke run."""
  args = common.parse_arg(arg, runlocal=False, backbone='')
  c = common.base_config()
  c.task = 'segmentation'
  c.task_options = ml_collections.ConfigDict(dict(eval_mode='whole'))
  c.model.name = 'segformer_b0'
  c.model.overrides = ml_collections.ConfigDict()
  if args.backbone:
    c.model.overrides.backbone = args.backbone
  c.data.name = 'shapes'
  c.data.image_size = 64
  c.data.train_split = 'train'
  c.data.eval_split = 'test'
  c.data.augment = 'seg'
  c.data.seg = ml_collections.ConfigDict(dict(
      ratio_range=(0.5, 2.0), cat_max_ratio=0.75, flip=True, photometric=True))
  c.batch_size = 32
  c.eval_batch_size = 48
  c.total_steps = 800
  c.optimizer.name = 'adamw'
  c.optimizer.learning_rate = 1e-3
  c.optimizer.weight_decay = 0.01
  c.schedule.name = 'poly'
  c.schedule.power = 1.0
  c.schedule.warmup_steps = 50
  c.log_every = 50
  c.eval_every = 200
  c.checkpoint_every = 400
  if args.runlocal:
    common.runlocal(c, steps=4, batch_size=8)
    c.data.train_split = 'train[:16]'
    c.data.eval_split = 'test[:8]'
  return c
