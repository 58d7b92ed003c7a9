r"""Learning-rate warmup: a large rate spikes early without it and trains with it (deck 001).

    python -m experiments.course --only=warmup --out=/tmp/course   # -> warmup.png

The digits 3-layer MLP (experiments/configs/digits_baselines.py:model=mlp3,
two hidden layers of 128 ReLU units, He init) trained by Adam at a large
constant rate α = 0.05, batch 64, no regularization, through the trainer:

* no warmup: the first steps at full α, while Adam's second-moment
  estimate is built from a few gradients, throw the loss far above its
  starting value ln 10 ≈ 2.3 (a spike);
* linear warmup αₜ = α·t/50 for the first 50 steps (Goyal et al. 2017),
  then constant: no spike, and the net trains at the full rate.

Claims: without warmup the training loss peaks at > 2× its initial value
within the first 60 steps; with warmup the peak stays < 1.3× the initial
loss, and the warmed-up run trains (mean loss of the last 20 steps < 0.5,
test accuracy > 0.9). On this small net the run without warmup recovers
from its spike too (the two end within noise of each other), so no claim
compares their final losses.
"""
from __future__ import annotations

import os
from typing import Optional

import ml_collections
import numpy as np

from experiments.course import figure
from experiments.course import runs as runs_lib
from experiments.course.claim import Claim, greater, less

LR = 0.05
WARMUP = 50


def config(warmup: Optional[int], steps: int) -> ml_collections.ConfigDict:
  from experiments.configs import digits_baselines  # pylint: disable=g-import-not-at-top
  c = digits_baselines.get_config('model=mlp3')
  c.total_epochs = None
  c.total_steps = steps
  c.optimizer = ml_collections.ConfigDict({'name': 'adam', 'learning_rate': LR})
  c.schedule = ml_collections.ConfigDict({'name': 'constant', 'warmup_steps': warmup})
  c.reg.kind = 'none'
  c.reg.strength = 0.0
  c.batch_size = 64
  c.log_every = 1
  c.eval_every = steps
  c.checkpoint_every = steps
  return c


def run(out: str, quick: bool = False) -> dict[str, Claim]:
  steps = 150 if quick else 400
  runs = {label: runs_lib.train_records(label, config(w, steps),
                                        runs_lib.workdir(out, 'warmup', label, quick))
          for label, w in (('no warmup', None), (f'warmup {WARMUP} steps', WARMUP))}
  plot(runs, os.path.join(out, 'warmup.png'))
  loss = {k: np.asarray(r.series('train/loss')[1]) for k, r in runs.items()}
  nw, w = loss['no warmup'], loss[f'warmup {WARMUP} steps']
  ok = all(r.diverged is None for r in runs.values())
  return {
      'no warmup: peak loss in first 60 steps / initial': greater(
          float(nw[:60].max() / nw[0]) if ok else np.inf, 2.0),
      'warmup: peak loss in first 60 steps / initial': less(float(w[:60].max() / w[0]), 1.3),
      'warmup: mean loss of the last 20 steps': less(float(w[-20:].mean()), 0.5),
      'warmup: test accuracy': greater(
          runs[f'warmup {WARMUP} steps'].series('val/accuracy')[1][-1], 0.9),
  }


def plot(runs: dict[str, runs_lib.Run], path: str) -> None:
  fig, axes = figure.new(2, width=5.4)
  for label, run in runs.items():
    xs, ys = run.series('train/loss')
    axes[0][0].plot(xs, ys, lw=1.0, label=label)
    xs, lr = run.series('lr')
    axes[0][1].plot(xs, lr, label=label)
  axes[0][0].set_yscale('log')
  axes[0][0].set_ylabel('training loss (cross-entropy)')
  axes[0][0].set_title(f'Adam, α = {LR}, digits 3-layer MLP')
  axes[0][1].set_ylabel('learning rate')
  axes[0][1].set_title('schedule')
  for ax in axes[0]:
    ax.set_xlabel('step')
    ax.grid(alpha=0.3)
    ax.legend()
  figure.save(fig, path)
