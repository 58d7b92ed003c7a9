"""Argument checks shared by optimizers and schedules.

Every check raises `ValueError` naming the argument, the offending value and
the valid range, so a bad config fails before anything is traced.
"""
from __future__ import annotations

import math
from typing import Any, Callable


def is_schedule(value: Any) -> bool:
  """True for a schedule `step -> value` (any callable)."""
  return callable(value)


def _real(name: str, value: Any) -> float:
  try:
    x = float(value)
  except (TypeError, ValueError):
    raise ValueError(f'{name} must be a real number, got {value!r}') from None
  if not math.isfinite(x):
    raise ValueError(f'{name} must be finite, got {value!r}')
  return x


def finite(name: str, value: Any) -> float:
  """Returns `value` as a float, or raises if it is not a finite number."""
  return _real(name, value)


def non_negative(name: str, value: Any) -> float:
  """A finite number >= 0."""
  x = _real(name, value)
  if x < 0:
    raise ValueError(f'{name} must be finite and >= 0, got {value!r}')
  return x


def positive(name: str, value: Any) -> float:
  """A finite number > 0."""
  x = _real(name, value)
  if x <= 0:
    raise ValueError(f'{name} must be finite and > 0, got {value!r}')
  return x


def unit_interval(name: str, value: Any, include_one: bool = False) -> float:
  """A decay rate in [0, 1) (or [0, 1] when `include_one`)."""
  x = _real(name, value)
  ok = 0.0 <= x <= 1.0 if include_one else 0.0 <= x < 1.0
  if not ok:
    valid = '[0, 1]' if include_one else '[0, 1)'
    raise ValueError(f'{name} must be in {valid}, got {value!r}')
  return x


def learning_rate(value: Any, name: str = 'learning_rate'
                  ) -> float | Callable[[Any], Any]:
  """A finite float >= 0, or a schedule callable (checked when called)."""
  if is_schedule(value):
    return value
  try:
    x = float(value)
  except (TypeError, ValueError):
    raise ValueError(
        f'{name} must be a finite float >= 0 or a schedule step -> lr, '
        f'got {value!r}') from None
  if not math.isfinite(x) or x < 0:
    raise ValueError(
        f'{name} must be a finite float >= 0 or a schedule step -> lr, '
        f'got {value!r}')
  return x


def one_of(name: str, value: Any, valid: tuple[Any, ...]) -> Any:
  """`value` if it is one of `valid`."""
  if value not in valid:
    raise ValueError(f'{name} must be one of {list(valid)}, got {value!r}')
  return value


def non_negative_int(name: str, value: Any) -> int:
  """An integer >= 0 (Python or numpy integer; floats with integral value ok)."""
  try:
    x = float(value)
  except (TypeError, ValueError):
    raise ValueError(f'{name} must be an integer >= 0, got {value!r}') from None
  if not math.isfinite(x) or x < 0 or x != int(x):
    raise ValueError(f'{name} must be an integer >= 0, got {value!r}')
  return int(x)
