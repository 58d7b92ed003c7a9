r"""Batch size and learning rate: the linear scaling rule, checked on digits.

    python -m experiments.course --only=batch_scaling --out=/tmp/course   # -> batch_scaling.png

Goyal et al. (2017), "Accurate, Large Minibatch SGD": when the minibatch is
multiplied by k, multiply the learning rate by k. With SGD, k small steps of
size α on batches B_1..B_k and one step of size kα on their union move the
weights by nearly the same amount (the same sum of gradients) as long as
the gradient changes little over the k small steps, so training curves
plotted *per epoch* coincide.

Three runs of the digits softmax classifier (plain SGD, constant rate,
3 epochs):

    base:      batch  B, lr α
    scaled:    batch 4B, lr 4α     (the rule: ≈ the base curve per epoch)
    unscaled:  batch 4B, lr α      (4× fewer steps of the same size: lags)

`claims()` measures the gap between the curves per epoch (mean absolute
difference of the training loss, interpolated on a common epoch grid) and
the final validation accuracies.
"""
from __future__ import annotations

import os

import ml_collections
import numpy as np

from experiments.course import runs as runs_lib
from experiments.course.claim import Claim, between, greater, less

BASE_BATCH = 16
BASE_LR = 0.02
K = 4


def config(batch: int, lr: float, epochs: float) -> ml_collections.ConfigDict:
  from experiments.configs import digits_baselines  # pylint: disable=g-import-not-at-top
  c = digits_baselines.get_config('model=softmax')
  c.total_epochs = epochs
  c.total_steps = None
  c.batch_size = batch
  c.optimizer = ml_collections.ConfigDict({'name': 'sgd', 'learning_rate': lr})
  c.schedule = ml_collections.ConfigDict({'name': 'constant'})
  c.reg.kind = 'none'
  c.reg.strength = 0.0
  c.log_every = max(1, 32 // batch)  # every 32 examples... per-epoch grids align
  c.eval_every = 10_000
  c.checkpoint_every = 10_000
  return c


def run_all(out: str, epochs: float = 3.0, quick: bool = False) -> dict[str, runs_lib.Run]:
  settings = {'base': (BASE_BATCH, BASE_LR), 'scaled': (K * BASE_BATCH, K * BASE_LR),
              'unscaled': (K * BASE_BATCH, BASE_LR)}
  return {label: runs_lib.train_records(label, config(b, lr, epochs),
                                        runs_lib.workdir(out, 'batch_scaling', label, quick))
          for label, (b, lr) in settings.items()}


def per_epoch(run: runs_lib.Run, grid: np.ndarray) -> np.ndarray:
  """Training loss interpolated at the epochs in `grid`."""
  xs, ys = run.series('train/loss', x='epoch')
  return np.interp(grid, xs, ys)


def claims(runs: dict[str, runs_lib.Run]) -> dict[str, float]:
  ends = [run.series('train/loss', x='epoch')[0] for run in runs.values()]
  lo = max(e[0] for e in ends)
  hi = min(e[-1] for e in ends)
  grid = np.linspace(lo, hi, 50)
  base = per_epoch(runs['base'], grid)
  out = {}
  for label in ('scaled', 'unscaled'):
    out[f'{label}_gap'] = float(np.mean(np.abs(per_epoch(runs[label], grid) - base)))
  for label, run in runs.items():
    _, acc = run.series('val/accuracy')
    out[f'{label}_val_accuracy'] = float(acc[-1]) if acc else float('nan')
    out[f'{label}_final_loss'] = float(per_epoch(run, grid[-1:])[0])
  return out


def plot(runs: dict[str, runs_lib.Run], path: str) -> None:
  """batch_scaling.png: training loss per epoch for the three runs."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, ax = plt.subplots(figsize=(6.5, 4.5))
  names = {'base': f'batch {BASE_BATCH}, lr {BASE_LR:g}',
           'scaled': f'batch {K * BASE_BATCH}, lr {K * BASE_LR:g} (scaled ×{K})',
           'unscaled': f'batch {K * BASE_BATCH}, lr {BASE_LR:g} (not scaled)'}
  for label, run in runs.items():
    xs, ys = run.series('train/loss', x='epoch')
    ax.plot(xs, ys, label=names[label], lw=1.2)
  ax.set_xlabel('epoch')
  ax.set_ylabel('training loss')
  ax.set_yscale('log')
  ax.set_title('linear scaling rule: batch ×k, lr ×k')
  ax.grid(alpha=0.3)
  ax.legend()
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def run(out: str, quick: bool = False) -> dict[str, Claim]:
  """batch_scaling.png and the rule as claims; `quick` trains 2 epochs, not 3."""
  runs = run_all(out, epochs=2.0 if quick else 3.0, quick=quick)
  plot(runs, os.path.join(out, 'batch_scaling.png'))
  c = claims(runs)
  return {
      'scaled: per-epoch loss gap to base': less(
          c['scaled_gap'], min(0.15, 0.25 * c['unscaled_gap']), ' (0.15, ¼ of unscaled gap)'),
      'scaled: val accuracy − base': between(
          c['scaled_val_accuracy'] - c['base_val_accuracy'], -0.03, 0.03),
      'unscaled: final loss / base': greater(c['unscaled_final_loss'] / c['base_final_loss'], 1.5),
      'unscaled: val accuracy − scaled': less(
          c['unscaled_val_accuracy'] - c['scaled_val_accuracy'], 0.0),
  }
