"""A finished sweep's report: the sorted table, sweep.csv and sweep.png."""
from __future__ import annotations

import csv
import math
import os
from typing import Sequence

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402

from experiments.sweeps.results import TrialResult  # noqa: E402
from experiments.sweeps.results import format_value  # noqa: E402
from experiments.sweeps.results import metric_label  # noqa: E402
from experiments.sweeps.spec import SweepSpec  # noqa: E402


def ranked(spec: SweepSpec, results: Sequence[TrialResult]) -> list[TrialResult]:
  """Completed trials best first (by the metric), then failed ones."""
  ok = sorted((r for r in results if r.state == 'COMPLETE'), key=lambda r: r.value,
              reverse=spec.direction == 'maximize')
  return ok + [r for r in results if r.state != 'COMPLETE']


def table(spec: SweepSpec, results: Sequence[TrialResult]) -> str:
  """A plain-text table, best trial first."""
  names = [p.name for p in spec.params]
  header = ['rank', 'trial', metric_label(spec.metric), *names, 'steps', 'wall s', 'status']
  rows = []
  for i, r in enumerate(ranked(spec, results)):
    rows.append([
        str(i + 1), r.key, f'{r.value:.6f}' if r.value is not None else '-',
        *[format_value(r.params.get(n)) for n in names],
        str(r.steps) if r.steps is not None else '-',
        f'{r.wall_s:.1f}' if r.wall_s is not None else '-',
        'ok' if r.state == 'COMPLETE' else f'FAIL: {r.reason}'])
  widths = [max(len(h), *(len(row[j]) for row in rows)) if rows else len(h)
            for j, h in enumerate(header)]
  fmt = lambda cells: '  '.join(c.ljust(w) for c, w in zip(cells, widths))  # noqa: E731
  return '\n'.join([fmt(header), fmt(['-' * w for w in widths]), *map(fmt, rows)])


def write_csv(spec: SweepSpec, results: Sequence[TrialResult], path: str) -> None:
  """One row per trial, best first: key, stage, state, metric, params, reason."""
  names = [p.name for p in spec.params]
  with open(path, 'w', newline='') as f:
    w = csv.writer(f)
    w.writerow(['trial', 'number', 'stage', 'state', spec.metric, *names, 'steps',
                'wall_s', 'reason', 'workdir'])
    for r in ranked(spec, results):
      w.writerow([r.key, r.number, r.stage, r.state, '' if r.value is None else r.value,
                  *[r.params.get(n) for n in names], r.steps, r.wall_s, r.reason, r.workdir])


def plot(spec: SweepSpec, results: Sequence[TrialResult], path: str) -> None:
  """The metric against each swept parameter (log axes for log parameters),
  coloured by stage; failed trials are not plotted."""
  params = spec.params
  fig, axes = plt.subplots(1, len(params), figsize=(4.2 * len(params), 3.4), squeeze=False)
  ok = [r for r in results if r.state == 'COMPLETE' and r.value is not None
        and math.isfinite(r.value)]
  stages = sorted({r.stage for r in ok})
  for ax, p in zip(axes[0], params):
    for s in stages:
      pts = [r for r in ok if r.stage == s]
      if p.numeric:
        xs = [r.params[p.name] for r in pts]
      else:
        xs = [list(p.values).index(r.params[p.name]) for r in pts]
      ax.scatter(xs, [r.value for r in pts], s=22, alpha=0.8,
                 label=f'stage {s}' if len(stages) > 1 else None)
    if p.numeric and p.log:
      ax.set_xscale('log')
    if not p.numeric:
      ax.set_xticks(range(len(p.values)))
      ax.set_xticklabels([str(v) for v in p.values], rotation=20)
    ax.set_xlabel(f'{p.name} ({p.path})' if p.path else p.name)
    ax.set_ylabel(metric_label(spec.metric))
    ax.grid(alpha=0.3)
  if len(stages) > 1:
    axes[0][0].legend()
  n_fail = sum(r.state != 'COMPLETE' for r in results)
  fig.suptitle(f'{spec.method} sweep: {len(ok)} trials'
               + (f' ({n_fail} failed)' if n_fail else ''))
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def write_report(spec: SweepSpec, results: Sequence[TrialResult], workdir: str) -> str:
  """Writes sweep.csv and sweep.png into `workdir`; returns the table."""
  write_csv(spec, results, os.path.join(workdir, 'sweep.csv'))
  plot(spec, results, os.path.join(workdir, 'sweep.png'))
  return table(spec, results)
