"""`least_squares(residual_fn, x0, method=...)`: min ½‖r(x)‖² in one jit-compiled loop.

Runs `gauss_newton`, `levenberg` or `levenberg_marquardt` (the method names
of `optim.create`) in a `lax.while_loop` over a pytree x0, until

    ‖Jᵀr‖_∞ ≤ tol                                  (converged)
    ‖δ‖ ≤ xtol·(‖x‖ + xtol) for an accepted step     (converged, small step)

or `maxiter` updates (rejected LM trials count), a non-finite cost or
gradient at the start (NON_FINITE), or damping overflow (LM rejecting every
step). `fun` is the cost ½‖r‖², as in `scipy.optimize.least_squares`.
"""
from __future__ import annotations

from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from optim.second_order.gauss_newton import flat_residual_fn
from optim.second_order import result as result_lib
from optim.second_order.methods import LEAST_SQUARES as METHODS
from optim.second_order.minimize import check_loop_args
from optim.second_order.minimize import check_x0

_MAX_DAMPING = 1e30


def _run(residual_fn, x0, tol, xtol, args, *, method, options, maxiter, record_history):
  """The compiled loop; see `least_squares`."""
  x_init, unravel = ravel_pytree(x0)
  dtype = x_init.dtype
  r_flat = flat_residual_fn(lambda p: residual_fn(p, *args), unravel, dtype)
  tx = METHODS[method](**dict(options))
  tol = jnp.asarray(tol, dtype)
  xtol = jnp.asarray(xtol, dtype)
  history = None
  if record_history:
    nan = jnp.full((maxiter + 1,), jnp.nan, dtype)
    history = {'fun': nan, 'grad_norm': nan, 'nfev': jnp.zeros((maxiter + 1,), jnp.int32)}

  def cond(c):
    return c['status'] == result_lib.RUNNING

  def body(c):
    x, k = c['x'], c['k']
    updates, state = tx.update(None, c['state'], x, residual_fn=lambda p: r_flat(p))
    start_finite = jnp.isfinite(state.start_value) & jnp.isfinite(state.grad_norm)
    done_before_step = (state.grad_norm <= tol) | ~start_finite
    step = jnp.where(done_before_step, 0.0, updates)
    x_new = x + step
    accepted = state.accepted & ~done_before_step
    small = accepted & (jnp.linalg.norm(step) <= xtol * (jnp.linalg.norm(x) + xtol))
    if method == 'gauss_newton':  # a Gauss-Newton step is only refused when it is non-finite
      failed, fail_status = ~state.accepted & ~done_before_step, result_lib.NON_FINITE
    else:
      failed, fail_status = ~accepted & (state.damping > _MAX_DAMPING), result_lib.DAMPING_OVERFLOW
    k_new = k + jnp.where(done_before_step, 0, 1)
    status = jnp.where(
        ~start_finite, result_lib.NON_FINITE,
        jnp.where(state.grad_norm <= tol, result_lib.CONVERGED,
                  jnp.where(small, result_lib.SMALL_STEP,
                            jnp.where(failed, fail_status,
                                      jnp.where(k_new >= maxiter, result_lib.MAXITER,
                                                result_lib.RUNNING)))))
    out = dict(x=x_new, state=state, k=k_new,
               nfev=c['nfev'] + 2,  # r(x) (with J) and the trial r(x + δ)
               njev=c['njev'] + 1, status=status.astype(jnp.int32))
    if record_history:
      h = c['history']
      out['history'] = {
          'fun': h['fun'].at[k].set(state.start_value).at[k_new].set(state.value),
          'grad_norm': h['grad_norm'].at[k].set(state.grad_norm),
          'nfev': h['nfev'].at[k_new].set(out['nfev'])}
    return out

  zero = jnp.zeros((), jnp.int32)
  carry = dict(x=x_init, state=tx.init(x_init), k=zero, nfev=zero, njev=zero,
               status=jnp.asarray(result_lib.RUNNING, jnp.int32))
  if record_history:
    carry['history'] = history
  c = jax.lax.while_loop(cond, body, carry)
  # Cost and gradient at the returned point (one residual + one vjp).
  r, vjp = jax.vjp(r_flat, c['x'])
  grad = vjp(r)[0]
  gnorm = jnp.max(jnp.abs(grad))
  hist = c.get('history')
  if hist is not None:
    hist = dict(hist, grad_norm=hist['grad_norm'].at[c['k']].set(gnorm))
  return result_lib.OptimizeResult(
      x=unravel(c['x']), fun=0.5 * jnp.vdot(r, r), grad=unravel(grad), grad_norm=gnorm,
      iterations=c['k'],
      converged=(c['status'] == result_lib.CONVERGED) | (c['status'] == result_lib.SMALL_STEP),
      status=c['status'], nfev=c['nfev'] + 1, njev=c['njev'] + 1,
      linesearch_status=jnp.asarray(-1, jnp.int32), history=hist)


_run_jit = jax.jit(_run, static_argnames=('residual_fn', 'method', 'options', 'maxiter',
                                          'record_history'))


def check_residuals(residual_fn: Callable[..., jax.Array], x0: Any, args: tuple[Any, ...],
                    method: str) -> None:
  """ValueError unless residual_fn(x0, *args) is a 1-D floating vector (m ≥ n for
  'gauss_newton')."""
  out = jax.eval_shape(lambda p: residual_fn(p, *args), x0)
  n = ravel_pytree(x0)[0].shape[0]
  if not hasattr(out, 'shape') or len(out.shape) != 1 or out.shape[0] < 1:
    raise ValueError(f'residual_fn must return a 1-D vector of residuals; got '
                     f'{getattr(out, "shape", out)!r} for x0 with {n} parameters.')
  if not jnp.issubdtype(out.dtype, jnp.floating):
    raise ValueError(f'residual_fn must return floating residuals; got dtype {out.dtype}.')
  if method == 'gauss_newton' and out.shape[0] < n:
    raise ValueError(f"method='gauss_newton' needs at least as many residuals as parameters; "
                     f'got {out.shape[0]} residuals for {n} parameters (use '
                     "method='levenberg_marquardt').")


def least_squares(residual_fn: Callable[..., jax.Array], x0: Any,
                  method: str = 'levenberg_marquardt', *, args: tuple[Any, ...] = (),
                  maxiter: int = 200, tol: float = 1e-10, xtol: float = 1e-12,
                  options: Optional[dict[str, Any]] = None, history: bool = False
                  ) -> result_lib.OptimizeResult:
  """Minimises ½‖r(x)‖² for residuals r of a pytree x.

  Args:
    residual_fn: (x, *args) ↦ 1-D residual vector (jax-traceable; the same
      function object reuses the compiled loop).
    x0: starting point, any pytree of finite floating arrays.
    method: 'levenberg_marquardt' (D = diag(JᵀJ)), 'levenberg' (D = I) or
      'gauss_newton'.
    args: extra (traced) arguments of residual_fn, e.g. data.
    maxiter: most updates (rejected LM trials included).
    tol: stop when ‖Jᵀr‖_∞ ≤ tol.
    xtol: stop when an accepted step has ‖δ‖ ≤ xtol·(‖x‖ + xtol).
    options: keyword arguments of the method's factory (e.g. {'tau': 1e-3},
      {'solver': 'cg'}); values must be hashable.
    history: also record per-iteration 'fun', 'grad_norm' and 'nfev'.

  Returns:
    An `OptimizeResult`; `fun` is the cost ½‖r‖², `grad` is Jᵀr, nfev counts
    residual evaluations and njev Jacobian (or linearisation) evaluations.

  Raises:
    ValueError: unknown method or option, non-finite x0, residuals that are
      not a 1-D floating vector, fewer residuals than parameters for
      'gauss_newton'.
  """
  if method not in METHODS:
    raise ValueError(f'method={method!r} is not one of {sorted(METHODS)}.')
  check_x0(x0)
  check_loop_args(maxiter, tol)
  if not xtol >= 0:
    raise ValueError(f'xtol={xtol!r} must be >= 0.')
  check_residuals(residual_fn, x0, tuple(args), method)
  frozen = tuple(sorted((options or {}).items()))
  try:
    METHODS[method](**dict(frozen))
  except TypeError as e:
    raise ValueError(f'options={options!r} do not fit method={method!r}: {e}') from e
  res = _run_jit(residual_fn, x0, tol, xtol, tuple(args), method=method, options=frozen,
                 maxiter=int(maxiter), record_history=bool(history))
  return result_lib.truncate_history(res)
