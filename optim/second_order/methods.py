"""The second-order methods by name: one table for `optim.create`, `minimize` and `least_squares`.

Two kinds, by what their update needs besides the gradient:

- `MINIMIZERS`: minimise a scalar f; update takes `value=`, `grad=` and
  `value_fn=` (the objective, for line searches, Hessians and
  Hessian-vector products). `minimize(method=...)` runs them.
- `LEAST_SQUARES`: minimise ½‖r(x)‖²; update takes `residual_fn=` (params ↦
  residual vector) and ignores the incoming gradient.
  `least_squares(method=...)` runs them.
"""
from __future__ import annotations

from typing import Any, Callable

from optim.second_order.bfgs import bfgs
from optim.second_order.gauss_newton import gauss_newton
from optim.second_order.gradient_descent import gd_linesearch
from optim.second_order.lbfgs import lbfgs
from optim.second_order.levenberg_marquardt import levenberg
from optim.second_order.levenberg_marquardt import levenberg_marquardt
from optim.second_order.newton import newton
from optim.second_order.newton_cg import newton_cg

MINIMIZERS: dict[str, Callable[..., Any]] = {
    'lbfgs': lbfgs,
    'bfgs': bfgs,
    'newton': newton,
    'newton_cg': newton_cg,
    'gd_linesearch': gd_linesearch,
}
LEAST_SQUARES: dict[str, Callable[..., Any]] = {
    'gauss_newton': gauss_newton,
    'levenberg': levenberg,
    'levenberg_marquardt': levenberg_marquardt,
}
OPTIMIZERS: dict[str, Callable[..., Any]] = {**MINIMIZERS, **LEAST_SQUARES}


def needs_value_fn(name: str) -> bool:
  """Whether optimizer `name`'s update takes `value=`, `grad=`, `value_fn=`."""
  return name in MINIMIZERS


def needs_residual_fn(name: str) -> bool:
  """Whether optimizer `name`'s update takes `residual_fn=` (a least-squares method)."""
  return name in LEAST_SQUARES


def is_second_order(name: str) -> bool:
  """Whether `name` is a second-order method (chooses its own step; sees all parameters)."""
  return name in OPTIMIZERS
