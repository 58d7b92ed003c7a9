r"""Optimizers in practice: Adam's defaults are a good start; tuned SGD + momentum
with step decay matches or beats them (deck 000, "in practice").

    python -m experiments.course --only=optimizer_practice --out=/tmp/course
    # -> optimizer_practice.png

Through the trainer (experiments/course/runs.py), the digits 2-layer MLP
(digits_baselines.py:model=mlp2: 128 ReLU units, He init, L2 1e-4, batch
64) for the same number of steps:

* Adam with its defaults (α = 1e-3, β = (0.9, 0.999), ε = 1e-8), constant
  rate, no tuning;
* SGD with momentum 0.9 and step decay (α × 0.1 at 50 % and 75 % of the
  steps), with a tuning budget of three initial rates α ∈ {0.01, 0.03, 0.1}.

Claims: Adam with defaults reaches > 0.9 test accuracy (a good start); the
best of the three SGD + momentum runs reaches at least Adam's test accuracy
− 0.01 and at least Adam's final training loss × 1.1 or less (matches or
beats it given its tuning budget).
"""
from __future__ import annotations

import ml_collections
import numpy as np

from experiments.course import figure
from experiments.course import runs as runs_lib
from experiments.course.claim import Claim, greater, less

SGD_RATES = (0.01, 0.03, 0.1)


def config(optimizer: dict, schedule: str, steps: int) -> ml_collections.ConfigDict:
  from experiments.configs import digits_baselines  # pylint: disable=g-import-not-at-top
  c = digits_baselines.get_config('model=mlp2')
  c.total_epochs = None
  c.total_steps = steps
  c.optimizer = ml_collections.ConfigDict(optimizer)
  c.schedule = ml_collections.ConfigDict({'name': schedule})
  c.log_every = 5
  c.eval_every = steps // 4
  c.checkpoint_every = steps
  return c


def run(out: str, quick: bool = False) -> dict[str, Claim]:
  steps = 300 if quick else 1200
  settings = {'Adam (defaults)': ({'name': 'adam', 'learning_rate': 1e-3}, 'constant')}
  for lr in SGD_RATES:
    settings[f'SGD+momentum α={lr:g}, step decay'] = (
        {'name': 'sgd', 'learning_rate': lr, 'momentum': 0.9}, 'step')
  runs = {label: runs_lib.train_records(label, config(opt, sched, steps),
                                        runs_lib.workdir(out, 'optimizer_practice', label, quick))
          for label, (opt, sched) in settings.items()}
  plot(runs, f'{out}/optimizer_practice.png')
  acc = {k: r.series('val/accuracy')[1][-1] for k, r in runs.items()}
  final = {k: float(np.mean(r.series('train/loss')[1][-5:])) for k, r in runs.items()}
  adam = 'Adam (defaults)'
  best = max((k for k in runs if k != adam), key=lambda k: acc[k])
  return {
      'Adam (defaults) test accuracy': greater(acc[adam], 0.9),
      'best SGD+momentum test accuracy − Adam': greater(acc[best] - acc[adam], -0.01,
                                                        f' (best: {best})'),
      'best SGD+momentum final train loss / Adam': less(final[best] / final[adam], 1.1),
  }


def plot(runs: dict[str, runs_lib.Run], path: str) -> None:
  fig, axes = figure.new(2, width=5.4)
  for label, run in runs.items():
    style = dict(lw=2.0, color='k') if label.startswith('Adam') else dict(lw=1.0)
    axes[0][0].plot(*run.series('train/loss'), label=label, **style)
    axes[0][1].plot(*run.series('val/accuracy'), marker='o', label=label, **style)
  axes[0][0].set_yscale('log')
  axes[0][0].set_ylabel('training loss (cross-entropy + L2)')
  axes[0][1].set_ylabel('test accuracy (360 digits)')
  for ax in axes[0]:
    ax.set_xlabel('step')
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
  figure.save(fig, path, 'digits 2-layer MLP: Adam defaults vs tuned SGD + momentum')
