r"""Random search beats grid search when few hyperparameters matter (deck 000;
Bergstra & Bengio, JMLR 2012), and a grid sweep run end to end.

    python -m experiments.course --only=random_vs_grid --out=/tmp/course
    # -> random_vs_grid.png, random_vs_grid_sweep.png

A loss over two hyperparameters in [0, 1]², one important and one not,

    L(a, b) = 1 − exp(−(a − a*)² / (2·0.1²)) + 0.02·(b − ½)²,

with the optimum a* drawn uniformly from [0.05, 0.95] (the searcher does not
know where it is). With the same budget of 9 trials, a 3 × 3 grid tries only
3 distinct values of the important a; 9 random points try 9. Over 500 draws
of a* (and of the random points), the best loss found by random search is
lower on average and in most draws.

The grid sweep is the project's own machinery, end to end:
`python -m experiments.sweep --config=experiments/configs/sweep_digits.py:method=grid,runlocal`
(2 × 2 log-spaced grid over the softmax classifier's lr and λ, 8 training
steps per trial, each trial a `python -m experiments.main` run, 2 workers);
its sweep.png is copied to random_vs_grid_sweep.png.

Claims: mean best loss, random < grid; random wins in > 60 % of the draws;
the sweep exits 0 with 4 COMPLETE trials whose (lr, λ) are the 2 × 2 grid.
"""
from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys

import numpy as np

from experiments.course import figure
from experiments.course import runs as runs_lib
from experiments.course.claim import Claim, greater, less

BUDGET = 9
WIDTH = 0.1


def loss(a: np.ndarray, b: np.ndarray, a_star: np.ndarray) -> np.ndarray:
  return 1 - np.exp(-(a - a_star) ** 2 / (2 * WIDTH ** 2)) + 0.02 * (b - 0.5) ** 2


def grid_points() -> np.ndarray:
  side = np.linspace(0.0, 1.0, int(round(BUDGET ** 0.5)))
  return np.stack(np.meshgrid(side, side), -1).reshape(-1, 2)


def best_losses(draws: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
  """(grid best, random best) over `draws` optima a* and random point sets."""
  rng = np.random.default_rng(seed)
  a_star = rng.uniform(0.05, 0.95, (draws, 1))
  g = grid_points()
  r = rng.uniform(0.0, 1.0, (draws, BUDGET, 2))
  grid_best = loss(g[None, :, 0], g[None, :, 1], a_star).min(1)
  rand_best = loss(r[..., 0], r[..., 1], a_star).min(1)
  return grid_best, rand_best


def grid_sweep(out: str, quick: bool) -> tuple[int, list[dict[str, str]], str]:
  """Runs the 2 × 2 digits grid sweep; (exit status, sweep.csv rows, output tail)."""
  workdir = runs_lib.workdir(out, 'random_vs_grid', 'sweep', quick)
  env = dict(os.environ)
  env.pop('XLA_FLAGS', None)  # each trial is its own one-device process
  root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  proc = subprocess.run(
      [sys.executable, '-m', 'experiments.sweep',
       '--config=experiments/configs/sweep_digits.py:method=grid,runlocal',
       f'--workdir={workdir}', '--workers=2'],
      cwd=root, env=env, capture_output=True, text=True, timeout=900)
  rows = []
  if os.path.exists(os.path.join(workdir, 'sweep.csv')):
    with open(os.path.join(workdir, 'sweep.csv')) as f:
      rows = list(csv.DictReader(f))
  if os.path.exists(os.path.join(workdir, 'sweep.png')):
    shutil.copy(os.path.join(workdir, 'sweep.png'), os.path.join(out, 'random_vs_grid_sweep.png'))
  return proc.returncode, rows, (proc.stdout + proc.stderr)[-2000:]


def run(out: str, quick: bool = False) -> dict[str, Claim]:
  grid_best, rand_best = best_losses(500 if quick else 5000)
  plot(grid_best, rand_best, os.path.join(out, 'random_vs_grid.png'))
  status, rows, tail = grid_sweep(out, quick)
  complete = [r for r in rows if r['state'] == 'COMPLETE']
  pairs = {(float(r['lr']), float(r['reg'])) for r in complete}
  lrs, regs = sorted({p[0] for p in pairs}), sorted({p[1] for p in pairs})
  is_grid = len(pairs) == 4 and len(lrs) == 2 and len(regs) == 2
  return {
      f'mean best loss of {BUDGET} trials, random − grid': less(
          float(rand_best.mean() - grid_best.mean()), 0.0),
      'fraction of draws where random beats grid': greater(
          float(np.mean(rand_best < grid_best)), 0.6),
      'digits grid sweep: exit status, COMPLETE trials': Claim(
          f'{status}, {len(complete)}'
          + ('' if status == 0 else f' ({" ".join(tail.split()[-20:])})'),
          '0, 4 forming the 2 × 2 (lr, λ) grid', status == 0 and len(complete) == 4 and is_grid),
  }


def plot(grid_best: np.ndarray, rand_best: np.ndarray, path: str) -> None:
  fig, axes = figure.new(2, width=5.0)
  ax = axes[0][0]
  rng = np.random.default_rng(1)
  g, r = grid_points(), rng.uniform(0, 1, (BUDGET, 2))
  a_star = 0.37
  aa, bb = np.meshgrid(np.linspace(0, 1, 200), np.linspace(0, 1, 200))
  ax.contourf(aa, bb, loss(aa, bb, a_star), levels=20, cmap='Greys_r', alpha=0.6)
  ax.plot(g[:, 0], g[:, 1], 's', color='tab:blue', ms=8, label=f'grid ({BUDGET} trials)')
  ax.plot(r[:, 0], r[:, 1], 'o', color='tab:orange', ms=7, label=f'random ({BUDGET} trials)')
  ax.axvline(a_star, color='tab:red', ls='--', lw=1, label=f'optimum a* = {a_star}')
  ax.set_xlim(-0.04, 1.04)
  ax.set_ylim(-0.04, 1.04)
  ax.set_xlabel('a (important hyperparameter)')
  ax.set_ylabel('b (unimportant hyperparameter)')
  ax.set_title('L(a, b): dark = low loss')
  ax.legend(fontsize=7, loc='upper right')
  ax = axes[0][1]
  bins = np.linspace(0, 1, 31)
  ax.hist(grid_best, bins, alpha=0.6, label=f'grid: mean {grid_best.mean():.3f}')
  ax.hist(rand_best, bins, alpha=0.6, label=f'random: mean {rand_best.mean():.3f}')
  ax.set_xlabel(f'best loss found with {BUDGET} trials')
  ax.set_ylabel(f'count over {len(grid_best)} draws of a*')
  ax.set_title('same budget: random search finds lower losses')
  ax.legend()
  figure.save(fig, path)
