r"""Swin's shifted windows and relative position bias, ablated at small scale.

    python -m experiments.sweep --config=experiments/configs/swin_ablation.py \
        --workdir=/tmp/swin_ablation --workers=2

The shape of Table 4 of Liu et al. (ICCV 2021) on bundled data: a small Swin
(patch 2, window 4, C = 32, depths 2-2, heads 2-4) trained from scratch on
the digits upsampled to 16×16 (8×8 tokens, then 4×4), one trial per variant
(a grid over one preset parameter), 3 seeds would be `--config.seed=1,2`:

    variant             shifted windows   position
    w/o shifting        no                rel. pos. bias
    no pos.             yes               none
    abs. pos.           yes               learned absolute embedding (the paper's `ape`)
    abs.+rel. pos.      yes               both
    rel. pos. w/o app.  yes               rel. pos. bias alone: softmax(B)·V, no QKᵀ
    rel. pos.           yes               relative position bias (full Swin; = "shifted")

The paper (ImageNet-1K, Swin-T, `PAPER_TOP1`): w/o shifting 80.2, no pos.
80.1, abs. pos. 80.5, abs.+rel. pos. 81.3, rel. pos. w/o app. 79.3, rel. pos.
81.3 top-1; on 1.4k digits the differences are expected to be small and
noisy — the point is the runnable, resumable ablation table.

Model fields used (vision/swin.py `SwinTransformer`): `shifted_windows`,
`relative_position_bias`, `absolute_pos_embed`, `appearance`.
"""
from __future__ import annotations

import ml_collections

from experiments.configs import common
from experiments.sweeps import space

VARIANTS = {
    'w/o shifting': dict(shifted_windows=False, relative_position_bias=True,
                         absolute_pos_embed=False),
    'no pos.': dict(shifted_windows=True, relative_position_bias=False,
                    absolute_pos_embed=False),
    'abs. pos.': dict(shifted_windows=True, relative_position_bias=False,
                      absolute_pos_embed=True),
    'abs.+rel. pos.': dict(shifted_windows=True, relative_position_bias=True,
                           absolute_pos_embed=True),
    'rel. pos. w/o app.': dict(shifted_windows=True, relative_position_bias=True,
                               absolute_pos_embed=False, appearance=False),
    'rel. pos.': dict(shifted_windows=True, relative_position_bias=True,
                      absolute_pos_embed=False),
}
# Table 4 of Liu et al. (2021), ImageNet-1K top-1 (%) of Swin-T.
PAPER_TOP1 = {'w/o shifting': 80.2, 'no pos.': 80.1, 'abs. pos.': 80.5, 'abs.+rel. pos.': 81.3,
              'rel. pos. w/o app.': 79.3, 'rel. pos.': 81.3}


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """`runlocal` (4 steps per variant)."""
  args = common.parse_arg(arg, runlocal=False)
  c = common.base_config()
  c.model.name = 'swin_tiny_patch4_window7_224'
  c.model.overrides = ml_collections.ConfigDict(dict(
      patch_size=2, window_size=4, embed_dim=32, depths=(2, 2), num_heads=(2, 4),
      drop_path_rate=0.1))
  c.data.name = 'digits'
  c.data.image_size = 16
  c.batch_size = 64
  c.total_epochs = 60.0
  c.optimizer.name = 'adamw'
  c.optimizer.learning_rate = 1e-3
  c.optimizer.weight_decay = 0.05
  c.schedule.name = 'cosine'
  c.schedule.warmup_epochs = 3.0
  c.label_smoothing = 0.1
  c.log_every = 50
  c.eval_every = 225
  c.checkpoint_every = 450
  c.sweep = ml_collections.ConfigDict()
  c.sweep.method = 'grid'
  c.sweep.metric = 'val/accuracy'
  c.sweep.direction = 'maximize'
  c.sweep.summary = 'last'
  c.sweep.parameters = ml_collections.ConfigDict(dict(variant=space.preset(
      {name: {f'model.overrides.{k}': v for k, v in bundle.items()}
       for name, bundle in VARIANTS.items()})))
  if args.runlocal:
    common.runlocal(c, steps=4, batch_size=16)
  return c
