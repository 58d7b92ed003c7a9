"""The record a driver (`minimize`, `least_squares`) returns, and why it stopped."""
from __future__ import annotations

from typing import Any, NamedTuple, Optional

import jax
import numpy as np

from optim.second_order import linesearch_base

# Driver status codes (int32 inside the jit-compiled loop).
RUNNING = -1
CONVERGED = 0        # gradient (∞-norm) at or below tol
MAXITER = 1          # iteration budget spent
LINESEARCH_FAILED = 2  # the line search could not lower f; x is the last good point
NON_FINITE = 3       # f or ∇f became non-finite (diverged); x is the last finite point
SMALL_STEP = 4       # step below xtol (converged; least squares: relative to ‖x‖)
DAMPING_OVERFLOW = 5  # least squares: damping grew without an acceptable step

MESSAGES = {
    RUNNING: 'running',
    CONVERGED: 'converged: gradient norm <= tol',
    MAXITER: 'stopped: maximum number of iterations reached',
    LINESEARCH_FAILED: 'stopped: line search failed to lower the function',
    NON_FINITE: 'stopped: non-finite function value or gradient (diverging)',
    SMALL_STEP: 'converged: step size <= xtol',
    DAMPING_OVERFLOW: 'stopped: damping overflow, no step lowers the cost',
}
CONVERGED_STATUSES = (CONVERGED, SMALL_STEP)


class OptimizeResult(NamedTuple):
  """Outcome of `minimize` / `least_squares` (a pytree; fields are arrays).

  Attributes:
    x: solution, same pytree structure and dtypes as x0.
    fun: objective at x (least squares: the cost ½‖r(x)‖²).
    grad: gradient at x, a pytree like x0 (least squares: Jᵀr).
    grad_norm: ∞-norm of the gradient at x, the quantity compared with tol.
    iterations: iterations (accepted or rejected steps) done.
    converged: True when a convergence test stopped the loop.
    status: a code of this module; `reason` spells it out.
    nfev: function (residual) evaluations, line-search trials included.
    njev: gradient (Jacobian) evaluations.
    linesearch_status: status of the last line search (see
      `linesearch_base`); -1 when the method has none.
    history: None, or a dict of per-iteration arrays (index 0 = x0):
      'fun', 'grad_norm', 'nfev'.
  """
  x: Any
  fun: jax.Array
  grad: Any
  grad_norm: jax.Array
  iterations: jax.Array
  converged: jax.Array
  status: jax.Array
  nfev: jax.Array
  njev: jax.Array
  linesearch_status: jax.Array
  history: Optional[dict[str, jax.Array]] = None

  @property
  def reason(self) -> str:
    """Why the loop stopped, in words (needs a concrete `status`)."""
    msg = MESSAGES.get(int(self.status), f'unknown status {int(self.status)}')
    ls_status = int(self.linesearch_status)
    if int(self.status) == LINESEARCH_FAILED and ls_status in linesearch_base.STATUS_MESSAGES:
      msg += f' ({linesearch_base.STATUS_MESSAGES[ls_status]})'
    return msg


def truncate_history(result: OptimizeResult) -> OptimizeResult:
  """Cuts history arrays to iterations + 1 entries when `iterations` is concrete."""
  if result.history is None or isinstance(result.iterations, jax.core.Tracer):
    return result
  n = int(result.iterations) + 1
  return result._replace(history={k: np.asarray(v)[:n] for k, v in result.history.items()})
