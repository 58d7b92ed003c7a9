r"""Optimizers compared on the digits MLP at equal tuning budget.

    python -m experiments.compare --config=experiments/configs/compare_digits.py \
        --workdir=/tmp/compare_digits --workers=2
    ... --optimizers=sgd,adam,lbfgs                 (second-order rows: full batch)
    ... --optimizer=momentum --schedules=constant,step,cosine,linear,inverse_sqrt,warmup_cosine
    python -m experiments.compare --config=experiments/configs/compare_digits.py:runlocal ...

Every arm (optimizer or schedule) runs the same learning-rate grid for
`total_steps` steps of the 2-layer MLP (128 ReLU units, L2 1e-4, batch 64),
the best rate is rerun with 3 seeds, and the table reports final val
accuracy mean ± std, steps and wall time to 95% val accuracy, and the best
rate; compare.png overlays loss and accuracy against step and wall time.
"""
from __future__ import annotations

import ml_collections

from experiments.configs import common
from experiments.configs import digits_baselines


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """`model=<digits baseline>[,runlocal]`."""
  args = common.parse_arg(arg, model='mlp2', runlocal=False)
  c = digits_baselines.get_config(f'model={args.model}')
  c.total_epochs = None
  c.total_steps = 450  # 20 epochs
  c.schedule.name = 'constant'
  c.schedule.warmup_steps = None
  c.eval_every = 45
  c.log_every = 15
  c.checkpoint_every = 450
  c.compare = ml_collections.ConfigDict()
  c.compare.optimizers = ['sgd', 'momentum', 'nesterov', 'adagrad', 'rmsprop', 'adam']
  c.compare.lr_grid = [1e-3, 1e-2, 1e-1, 1.0]
  c.compare.seeds = 3
  c.compare.metric = 'val/accuracy'
  c.compare.target = 0.95
  c.compare.second_order_steps = 50
  if args.runlocal:
    common.runlocal(c, steps=6, batch_size=32)
    c.log_every = 2
    c.eval_every = 3
    c.compare.lr_grid = [1e-2, 1e-1]
    c.compare.seeds = 2
    c.compare.target = 0.5
    c.compare.second_order_steps = 4
  return c
