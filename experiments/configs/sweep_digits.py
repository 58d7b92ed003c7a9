r"""A learning-rate × regularization sweep of the softmax classifier on digits.

    python -m experiments.sweep --config=experiments/configs/sweep_digits.py \
        --workdir=/tmp/sweep_digits --workers=2
    ... :method=coarse_to_fine      (20 coarse trials of 3 epochs, then 10 of 20 epochs)
    ... :method=grid                (4 × 4 log-spaced grid)
    ... :model=mlp2                 (any model of digits_baselines.py)
    ... ,runlocal                   (tiny trials, as the tests run them)

The course's recipe: sample lr and λ log-uniformly (`lr = 10**uniform(-4, 0)`),
run short trials first, then narrow the ranges around the best and train
longer. Each trial is `python -m experiments.main` on the digits baseline
config with `optimizer.learning_rate` and `reg.strength` overridden; the
sweep ends with a table sorted by val accuracy, sweep.csv and sweep.png.
"""
from __future__ import annotations

import ml_collections

from experiments.configs import common
from experiments.configs import digits_baselines
from experiments.sweeps import space


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """`method=random|grid|coarse_to_fine,model=<digits baseline>[,runlocal]`."""
  args = common.parse_arg(arg, method='random', model='softmax', runlocal=False)
  c = digits_baselines.get_config(f'model={args.model}' + (',runlocal' if args.runlocal else ''))
  c.total_epochs = None
  c.total_steps = 360 if not args.runlocal else 8  # 16 epochs of 1437 digits at batch 64
  c.sweep = ml_collections.ConfigDict()
  c.sweep.method = args.method
  c.sweep.num_trials = 30 if not args.runlocal else 3
  c.sweep.metric = 'val/accuracy'
  c.sweep.direction = 'maximize'
  c.sweep.summary = 'last'
  c.sweep.seed = 0
  c.sweep.grid_points = 4 if not args.runlocal else 2
  c.sweep.margin = 0.25
  c.sweep.parameters = ml_collections.ConfigDict(dict(
      lr=space.log_uniform('optimizer.learning_rate', 1e-4, 1.0),
      reg=space.log_uniform('reg.strength', 1e-6, 1e-1),
  ))
  if args.runlocal:
    c.sweep.stages = [dict(num_trials=3, budget={'total_steps': 4}, top_k=1),
                      dict(num_trials=1, budget={'total_steps': 8}, top_k=1)]
  else:
    c.sweep.stages = [dict(num_trials=20, budget={'total_steps': 70}, top_k=5),
                      dict(num_trials=10, budget={'total_steps': 450}, top_k=3)]
  return c
