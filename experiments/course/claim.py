"""A course claim as a measured number, the expectation it is held to, and the verdict.

    Claim(measured=0.031, expected='< 0.25 × unscaled gap (0.41)', holds=True)

Every course experiment's `run(out_dir, quick)` returns `{name: Claim}`;
`python -m experiments.course` collects them into claims.json and a table.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Union

Measured = Union[float, int, bool, str]


@dataclasses.dataclass(frozen=True)
class Claim:
  measured: Measured
  expected: str
  holds: bool

  def to_json(self) -> dict[str, Any]:
    m = self.measured
    if isinstance(m, float) and not math.isfinite(m):
      m = str(m)  # JSON has no inf/nan
    return {'measured': m, 'expected': self.expected, 'holds': bool(self.holds)}


def less(measured: float, bound: float, text: str = '') -> Claim:
  """measured < bound."""
  return Claim(float(measured), f'< {bound:.4g}{text}', bool(measured < bound))


def greater(measured: float, bound: float, text: str = '') -> Claim:
  """measured > bound."""
  return Claim(float(measured), f'> {bound:.4g}{text}', bool(measured > bound))


def between(measured: float, low: float, high: float, text: str = '') -> Claim:
  """low < measured < high."""
  return Claim(float(measured), f'in ({low:.4g}, {high:.4g}){text}',
               bool(low < measured < high))


def fmt(value: Measured) -> str:
  """The table's rendering of a measured value."""
  if isinstance(value, bool):
    return str(value)
  if isinstance(value, (int, float)):
    return f'{value:.4g}'
  return str(value)
