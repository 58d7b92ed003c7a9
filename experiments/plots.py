"""Plots from metrics records (the dicts of metrics.jsonl): one run's curves, or runs compared.

    records = metrics.read_jsonl(f'{workdir}/metrics.jsonl')
    plots.training_curves(records, f'{workdir}/curves.png')
    plots.plot_panels(records, 'out.png', {'loss': ['train/loss', 'val/loss']}, x='step')
    plots.compare_runs({'adam': recs_a, 'sgd': recs_b}, 'train/loss', 'cmp.png', x='wall_time')

Records may miss keys (validation is logged less often than training): each
series uses the records that have its key. Files are written with the Agg
backend (no display needed).
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Optional, Sequence

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402  (after selecting the backend)

from experiments import workdir_paths  # noqa: E402

Records = Sequence[Mapping[str, Any]]


def save_figure(fig: Any, path: workdir_paths.PathLike, dpi: int = 100) -> None:
  """Writes `fig` to `path` (local or an object store; format from the suffix) and closes it."""
  target = workdir_paths.path(path)
  target.parent.mkdir(parents=True, exist_ok=True)
  with target.open('wb') as f:
    fig.savefig(f, dpi=dpi, format=target.suffix.lstrip('.') or 'png')
  plt.close(fig)


def series(records: Records, key: str, x: str = 'step') -> tuple[list[float], list[float]]:
  """(xs, ys) for the records holding a finite number under both `x` and `key`."""
  xs, ys = [], []
  for r in records:
    a, b = r.get(x), r.get(key)
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and math.isfinite(b):
      xs.append(a)
      ys.append(b)
  return xs, ys


def plot_panels(records: Records, path: str, panels: Mapping[str, Sequence[str]],
                x: str = 'step', title: Optional[str] = None,
                log_y: Sequence[str] = ()) -> str:
  """One subplot per panel, one line per key in it; panels without data are dropped."""
  panels = {name: keys for name, keys in panels.items()
            if any(series(records, k, x)[0] for k in keys)}
  if not panels:
    panels = {'(no data)': []}
  fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.8), squeeze=False)
  for ax, (name, keys) in zip(axes[0], panels.items()):
    for key in keys:
      xs, ys = series(records, key, x)
      if xs:
        ax.plot(xs, ys, label=key, marker='.' if len(xs) < 30 else None)
    ax.set_title(name)
    ax.set_xlabel(x)
    if name in log_y:
      ax.set_yscale('log')
    ax.grid(alpha=0.3)
    if keys:
      ax.legend()
  if title:
    fig.suptitle(title)
  fig.tight_layout()
  save_figure(fig, path, dpi=100)
  return path


def training_curves(records: Records, path: str, title: Optional[str] = None) -> str:
  """curves.png: loss and accuracy against step (and the learning rate when logged)."""
  panels = {
      'loss': ['train/loss', 'val/loss'],
      'accuracy': ['train/accuracy', 'val/accuracy', 'val/top5'],
      'learning rate': ['lr'],
  }
  return plot_panels(records, path, panels, title=title)


def compare_runs(runs: Mapping[str, Records], key: str, path: str, x: str = 'step',
                 title: Optional[str] = None, log_y: bool = False,
                 ax: Optional[Any] = None) -> str:
  """One line per run of `key` against `x` (e.g. loss vs step or vs wall time)."""
  own = ax is None
  if own:
    fig, ax = plt.subplots(figsize=(6, 4))
  for label, records in runs.items():
    xs, ys = series(records, key, x)
    if xs:
      ax.plot(xs, ys, label=label)
  ax.set_xlabel(x)
  ax.set_ylabel(key)
  if log_y:
    ax.set_yscale('log')
  ax.grid(alpha=0.3)
  ax.legend()
  if title:
    ax.set_title(title)
  if own:
    fig.tight_layout()
    save_figure(fig, path, dpi=100)
  return path
