"""Gradient descent with a line search: d = −∇f, step from the search.

With `linesearch='exact'` this is steepest descent with the "optimal
learning rate" αₖ = argmin_α f(xₖ − α∇f(xₖ)); with 'backtracking' (default)
the Armijo step from the quadratic-interpolation guess of N&W eq. 3.60.
"""
from __future__ import annotations

from typing import Any

import jax
import optax

from optim.second_order import linesearch as ls


def scale_by_steepest_descent() -> optax.GradientTransformation:
  """Maps ∇f to the steepest-descent direction −∇f."""

  def update_fn(updates, state, params=None):
    del params
    return jax.tree.map(lambda g: -g, updates), state

  return optax.GradientTransformation(lambda params: optax.EmptyState(), update_fn)


def gd_linesearch(linesearch: Any = 'backtracking', learning_rate: Any = None,
                  axis_name: str | None = None) -> optax.GradientTransformationExtraArgs:
  """Gradient descent whose step comes from a line search.

  Args:
    linesearch: 'backtracking', 'zoom', 'exact', a transform, or None for a
      fixed `learning_rate` (plain gradient descent).
    learning_rate: step when `linesearch` is None.
    axis_name: pmap axis over which `value_fn` averages (`lax.pmean`), e.g. the
      trainer's 'batch' in full-batch mode; derivatives of value_fn are
      averaged over it so every device takes the same step.

  Returns:
    An `optax.GradientTransformationExtraArgs` (update takes `value=`,
    `grad=`, `value_fn=`).
  """
  return ls.with_step(scale_by_steepest_descent(), linesearch, learning_rate,
                      initial_step='adaptive', axis_name=axis_name)
