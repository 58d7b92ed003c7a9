"""A finished trial: its record, its score from metrics.jsonl, its live line."""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Optional, Sequence

from experiments.sweeps.spec import SweepSpec


@dataclasses.dataclass
class TrialResult:
  """One finished trial as the report shows it."""
  number: int
  key: str
  stage: int
  state: str  # 'COMPLETE' or 'FAIL'
  value: Optional[float]
  params: dict[str, Any]
  reason: str
  workdir: str
  steps: Optional[int]
  wall_s: Optional[float]


def metric_label(metric: str) -> str:
  """'val/accuracy' -> 'val acc' (the course's live-line label)."""
  short = {'accuracy': 'acc', 'loss': 'loss', 'top5': 'top5'}
  parts = metric.split('/')
  return ' '.join(short.get(p, p) for p in parts)


def format_value(value: Any) -> str:
  if isinstance(value, float):
    return f'{value:e}'
  return str(value)


def live_line(spec: SweepSpec, result: TrialResult, done: int, total: int) -> str:
  """`val acc: 0.412000, lr: 1.405206e-04, reg: 4.793564e-01, (1 / 100)`."""
  head = (f'{metric_label(spec.metric)}: {result.value:f}' if result.state == 'COMPLETE'
          else f'FAILED ({result.reason})')
  params = ''.join(f', {p.name}: {format_value(result.params.get(p.name))}'
                   for p in spec.params)
  return f'{head}{params}, ({done} / {total})'


def summarize(records: Sequence[dict[str, Any]], metric: str, summary: str,
              direction: str) -> tuple[Optional[float], Optional[int], str]:
  """(value, last step, failure reason or '') of a finished run's metrics:
  the metric's last value (`summary='last'`) or its best over the run
  (`'best'`); a non-finite loss or metric anywhere is the failure 'diverged'."""
  for r in records:
    for key in ('train/loss', 'val/loss', metric):
      v = r.get(key)
      if isinstance(v, (int, float)) and not math.isfinite(v):
        return None, r.get('step'), f'diverged ({key}={v} at step {r.get("step")})'
  values = [(r[metric], r.get('step')) for r in records
            if isinstance(r.get(metric), (int, float))]
  if not values:
    return None, None, f'no {metric!r} in metrics.jsonl'
  last_step = records[-1].get('step')
  if summary == 'last':
    return float(values[-1][0]), last_step, ''
  pick = max if direction == 'maximize' else min
  return float(pick(v for v, _ in values)), last_step, ''
