r"""Learning rate too low, too high, good: the course's loss-curve sketch, measured.

    python -m experiments.course --only=lr_curves --out=/tmp/course   # -> lr_curves.png

The 2-layer MLP on digits (experiments/configs/digits_baselines.py:
128 ReLU units, He init, plain SGD at a constant learning rate, batch 64,
100 steps ≈ 4.5 epochs, no regularization) trained at four learning rates:

* low (1e-3): the loss falls slowly, almost linearly;
* good (0.3): fast decrease to a low loss;
* high (3): a drop, then a plateau at a high loss (here ≈ ln 10: the
  large steps kill the ReLUs and the net predicts the prior);
* very high (100): the loss explodes (NaN/Inf stops the run, or it ends far
  above where it started).

`claims()` turns each into numbers that tests assert.
"""
from __future__ import annotations

import math
import os
from typing import Optional

import ml_collections
import numpy as np

from experiments.course import runs as runs_lib
from experiments.course.claim import Claim, between

RATES = {'low': 1e-3, 'good': 0.3, 'high': 3.0, 'very high': 100.0}


def config(lr: float, steps: int = 100) -> ml_collections.ConfigDict:
  """The digits 2-layer MLP config with plain SGD at a constant `lr`."""
  from experiments.configs import digits_baselines  # pylint: disable=g-import-not-at-top
  c = digits_baselines.get_config('model=mlp2')
  c.total_epochs = None
  c.total_steps = steps
  c.optimizer = ml_collections.ConfigDict({'name': 'sgd', 'learning_rate': lr})
  c.schedule = ml_collections.ConfigDict({'name': 'constant'})
  c.reg.kind = 'none'
  c.reg.strength = 0.0
  c.batch_size = 64
  c.log_every = 1  # step 1 logs the loss at the initial parameters
  c.eval_every = steps
  c.checkpoint_every = steps
  return c


def run_all(out: str, steps: int = 100, rates: Optional[dict[str, float]] = None,
            quick: bool = False) -> dict[str, runs_lib.Run]:
  return {label: runs_lib.train_records(label, config(lr, steps),
                                        runs_lib.workdir(out, 'lr_curves', label, quick))
          for label, lr in (rates or RATES).items()}


def claims(runs: dict[str, runs_lib.Run]) -> dict[str, float]:
  """first/last training loss per run, and whether it diverged."""
  out = {}
  for label, run in runs.items():
    _, losses = run.series('train/loss')
    first = losses[0] if losses else math.nan
    last = losses[-1] if losses and run.diverged is None else math.inf
    out[f'{label}_first_loss'] = float(first)
    out[f'{label}_last_loss'] = float(last)
    out[f'{label}_diverged'] = float(run.diverged is not None or not math.isfinite(last)
                                     or last > first)
  return out


def plot(runs: dict[str, runs_lib.Run], path: str) -> None:
  """lr_curves.png: training loss against step for each learning rate."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, ax = plt.subplots(figsize=(6.5, 4.5))
  for i, (label, run) in enumerate(runs.items()):
    xs, ys = run.series('train/loss')
    lr = run.records[0].get('lr') if run.records else None
    name = f'{label} (lr={lr:.3g})' if lr is not None else label
    if run.diverged:
      name += ': diverged'
    ax.plot(xs, np.minimum(ys, 1e3) if ys else ys, color=f'C{i}', label=name)
  ax.set_yscale('log')
  ax.set_xlabel('step')
  ax.set_ylabel('training loss')
  ax.set_title('learning rate: too low, good, too high')
  ax.grid(alpha=0.3)
  ax.legend()
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def run(out: str, quick: bool = False) -> dict[str, Claim]:
  """lr_curves.png and the four regimes as claims; `quick` trains 40 steps, not 100."""
  runs = run_all(out, steps=40 if quick else 100, quick=quick)
  plot(runs, os.path.join(out, 'lr_curves.png'))
  c = claims(runs)
  best = min(c[f'{k}_last_loss'] for k in RATES)
  return {
      'low: last/first loss (slow decrease)': between(
          c['low_last_loss'] / c['low_first_loss'], 0.5, 1.0),
      'good: last loss, the lowest of all': Claim(
          c['good_last_loss'], f'< 0.5 and = min ({best:.4g})',
          c['good_last_loss'] < 0.5 and c['good_last_loss'] == best),
      'high: plateau near ln 10': between(c['high_last_loss'], 2.15, 2.45),
      'very high: diverged': Claim(bool(c['very high_diverged']), 'True',
                                   c['very high_diverged'] == 1.0),
  }
