"""What every line search returns, and the failure modes it can report.

A line search minimises (approximately) the 1-D restriction
φ(α) = f(x + α d) along a direction d from a point x with known f(x) = φ(0)
and ∇f(x), so φ'(0) = ∇f(x)ᵀd. The searches here work on flat vectors; the
optax-style transforms in `linesearch.py` ravel pytrees around them.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

# Status codes (int32, so they live inside jit-compiled loops).
SUCCESS = 0          # every condition the search claims was met
NOT_DESCENT = 1      # φ'(0) > 0: d points uphill, no step taken
FLAT = 2             # φ'(0) = 0 to rounding (|φ'(0)| ≤ 10ε‖∇f‖‖d‖), no step taken
NON_FINITE = 3       # φ(0) or φ'(0) non-finite, or no finite trial value found
MAX_EVALS = 4        # evaluation budget spent before any acceptable step
ARMIJO_ONLY = 5      # sufficient decrease met, curvature condition not (step is taken)

STATUS_MESSAGES = {
    SUCCESS: 'line search conditions satisfied',
    NOT_DESCENT: 'not a descent direction (directional derivative > 0)',
    FLAT: 'flat: directional derivative zero to rounding',
    NON_FINITE: 'non-finite function value or derivative',
    MAX_EVALS: 'no acceptable step within the evaluation budget',
    ARMIJO_ONLY: 'sufficient decrease met, curvature condition not met',
}

ValueFn = Callable[[jax.Array], jax.Array]
ValueAndGradFn = Callable[[jax.Array], tuple[jax.Array, jax.Array]]


class LineSearchResult(NamedTuple):
  """Outcome of one line search on flat vectors.

  Attributes:
    step: accepted step size α (0 when no step could be taken).
    value: φ(α) = f(x + α d) (f(x) when α = 0).
    grad: ∇f(x + α d), flat (∇f(x) when α = 0).
    num_value_evals: evaluations of f spent by the search.
    num_grad_evals: evaluations of ∇f spent by the search.
    status: one of the status codes of this module.
  """
  step: jax.Array
  value: jax.Array
  grad: jax.Array
  num_value_evals: jax.Array
  num_grad_evals: jax.Array
  status: jax.Array

  @property
  def took_step(self) -> jax.Array:
    return self.step > 0


def initial_checks(value: jax.Array, grad: jax.Array, d: jax.Array) -> jax.Array:
  """Status before any trial: NON_FINITE, NOT_DESCENT, FLAT or SUCCESS (go on).

  FLAT when |φ'(0)| ≤ 10ε‖∇f‖‖d‖: the directional derivative is zero up to
  the rounding of the dot product (zero gradient, zero or orthogonal d).
  """
  slope = jnp.vdot(grad, d)
  eps = jnp.finfo(slope.dtype).eps
  flat = jnp.abs(slope) <= 10 * eps * jnp.linalg.norm(grad) * jnp.linalg.norm(d)
  status = jnp.where(slope > 0, NOT_DESCENT, SUCCESS)
  status = jnp.where(flat, FLAT, status)
  status = jnp.where(jnp.isfinite(value) & jnp.isfinite(slope), status, NON_FINITE)
  return status.astype(jnp.int32)


def no_step(value: jax.Array, grad: jax.Array, status: jax.Array) -> LineSearchResult:
  zero = jnp.zeros((), jnp.int32)
  return LineSearchResult(jnp.zeros((), value.dtype), value, grad, zero, zero,
                          jnp.asarray(status, jnp.int32))
