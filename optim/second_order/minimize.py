"""`minimize(fun, x0, method=...)`: a scipy-like driver, one jit-compiled loop.

Runs a second-order transform of this package (direction + line search) in a
`lax.while_loop` over a pytree x0 (raveled to one vector inside), until

    ‖∇f(x)‖_∞ ≤ tol                       (converged, as scipy's gtol)

or, with `xtol`, until an accepted step is short, ‖xₖ₊₁ − xₖ‖₂ ≤ xtol
(converged: status SMALL_STEP), or `maxiter` iterations, a failed line search
(no step lowers f), or a non-finite value or gradient (divergence) — each reported in
`OptimizeResult.status` / `.reason`, so a run never loops forever. The value
and gradient the line search computed at the accepted point are reused for
the next iteration; `nfev`/`njev` count every evaluation, line-search trials
included. Compiled once per (fun, method, options, maxiter, history); x0,
`args` and `tol` are traced, so changing them does not recompile.
"""
from __future__ import annotations

from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree
import numpy as np

from optim.second_order import result as result_lib
from optim.second_order.methods import MINIMIZERS as METHODS


def check_x0(x0: Any) -> None:
  """ValueError unless every leaf of x0 is a floating array with finite values."""
  leaves = jax.tree.leaves(x0)
  if not leaves:
    raise ValueError(f'x0={x0!r} has no array leaves.')
  for leaf in leaves:
    if not jnp.issubdtype(jnp.result_type(leaf), jnp.floating):
      raise ValueError(f'x0 has a leaf of dtype {jnp.result_type(leaf)}; '
                       'starting points must be floating point.')
    if not isinstance(leaf, jax.core.Tracer) and not np.all(np.isfinite(np.asarray(leaf))):
      raise ValueError(f'x0 has non-finite values ({np.asarray(leaf)!r}); '
                       'the starting point must be finite.')


def check_loop_args(maxiter: int, tol: float) -> None:
  if int(maxiter) != maxiter or maxiter < 1:
    raise ValueError(f'maxiter={maxiter!r} must be a positive integer.')
  if not isinstance(tol, jax.core.Tracer) and not (np.isfinite(tol) and tol >= 0):
    raise ValueError(f'tol={tol!r} must be a finite number >= 0.')


def _freeze(options: Optional[dict[str, Any]]) -> tuple[tuple[str, Any], ...]:
  return tuple(sorted((options or {}).items()))


def _run(fun, x0, tol, xtol, args, *, method, options, maxiter, record_history):
  """The compiled loop; see `minimize`."""
  x_init, unravel = ravel_pytree(x0)
  dtype = x_init.dtype

  def f(z):
    return jnp.asarray(fun(unravel(z), *args), dtype)

  tx = METHODS[method](**dict(options))
  uses_linesearch = not (dict(options).get('linesearch', True) is None)
  state = tx.init(x_init)
  value, grad = jax.value_and_grad(f)(x_init)
  gnorm = jnp.max(jnp.abs(grad))
  tol = jnp.asarray(tol, dtype)
  xtol = jnp.asarray(xtol, dtype)  # < 0: the step rule is off
  finite = jnp.isfinite(value) & jnp.all(jnp.isfinite(grad))
  status = jnp.where(~finite, result_lib.NON_FINITE,
                     jnp.where(gnorm <= tol, result_lib.CONVERGED, result_lib.RUNNING))
  one = jnp.ones((), jnp.int32)
  history = None
  if record_history:
    nan = jnp.full((maxiter + 1,), jnp.nan, dtype)
    history = {'fun': nan.at[0].set(value), 'grad_norm': nan.at[0].set(gnorm),
               'nfev': jnp.zeros((maxiter + 1,), jnp.int32).at[0].set(1)}

  def cond(c):
    return c['status'] == result_lib.RUNNING

  def body(c):
    x, value, grad, k = c['x'], c['value'], c['grad'], c['k']
    updates, state = tx.update(grad, c['state'], x, value=value, grad=grad, value_fn=f)
    x_new = x + updates.astype(dtype)
    if uses_linesearch:
      ls_state = state[-1]
      new_value, new_grad = ls_state.value, ls_state.grad
      nfev = c['nfev'] + ls_state.num_value_evals
      njev = c['njev'] + ls_state.num_grad_evals
      took_step = ls_state.learning_rate > 0
      ls_status = ls_state.status
    else:
      new_value, new_grad = jax.value_and_grad(f)(x_new)
      nfev, njev = c['nfev'] + 1, c['njev'] + 1
      took_step = jnp.ones((), bool)
      ls_status = c['ls_status']
    finite = jnp.isfinite(new_value) & jnp.all(jnp.isfinite(new_grad))
    accept = took_step & finite
    short = accept & (jnp.linalg.norm(x_new - x) <= xtol)
    x = jnp.where(accept, x_new, x)
    value = jnp.where(accept, new_value, value)
    grad = jnp.where(accept, new_grad, grad)
    gnorm = jnp.max(jnp.abs(grad))
    k = k + 1
    status = jnp.where(
        ~took_step, result_lib.LINESEARCH_FAILED,
        jnp.where(~finite, result_lib.NON_FINITE,
                  jnp.where(gnorm <= tol, result_lib.CONVERGED,
                            jnp.where(short, result_lib.SMALL_STEP,
                                      jnp.where(k >= maxiter, result_lib.MAXITER,
                                                result_lib.RUNNING)))))
    out = dict(x=x, state=state, value=value, grad=grad, k=k, nfev=nfev, njev=njev,
               status=status.astype(jnp.int32), ls_status=ls_status)
    if record_history:
      h = c['history']
      out['history'] = {'fun': h['fun'].at[k].set(value),
                        'grad_norm': h['grad_norm'].at[k].set(gnorm),
                        'nfev': h['nfev'].at[k].set(nfev)}
    return out

  carry = dict(x=x_init, state=state, value=value, grad=grad, k=jnp.zeros((), jnp.int32),
               nfev=one, njev=one, status=status.astype(jnp.int32),
               ls_status=-one)
  if record_history:
    carry['history'] = history
  c = jax.lax.while_loop(cond, body, carry)
  return result_lib.OptimizeResult(
      x=unravel(c['x']), fun=c['value'], grad=unravel(c['grad']),
      grad_norm=jnp.max(jnp.abs(c['grad'])), iterations=c['k'],
      converged=(c['status'] == result_lib.CONVERGED) | (c['status'] == result_lib.SMALL_STEP),
      status=c['status'], nfev=c['nfev'],
      njev=c['njev'], linesearch_status=c['ls_status'], history=c.get('history'))


_run_jit = jax.jit(_run, static_argnames=('fun', 'method', 'options', 'maxiter',
                                          'record_history'))


def minimize(fun: Callable[[Any], jax.Array], x0: Any, method: str = 'lbfgs', *,
             args: tuple[Any, ...] = (), maxiter: int = 500, tol: float = 1e-6,
             xtol: Optional[float] = None, options: Optional[dict[str, Any]] = None,
             history: bool = False) -> result_lib.OptimizeResult:
  """Minimises a scalar function of a pytree with a second-order method.

  Args:
    fun: (x, *args) ↦ scalar f(x), jax-traceable (the same function object
      reuses the compiled loop).
    x0: starting point, any pytree of floating arrays (finite).
    method: 'lbfgs', 'bfgs', 'newton' (exact Hessian), 'newton_cg'
      (Hessian-free) or 'gd_linesearch' (gradient descent with a line search).
    args: extra arguments of `fun` (arrays, e.g. data), traced: new values do
      not recompile, unlike data captured in a closure.
    maxiter: most iterations.
    tol: stop when ‖∇f(x)‖_∞ ≤ tol.
    xtol: also stop (converged, status SMALL_STEP) when an accepted step
      has ‖xₖ₊₁ − xₖ‖₂ ≤ xtol; None: no step rule. Traced, like tol.
    options: keyword arguments of the method's factory (e.g.
      `{'memory_size': 20}`, `{'linesearch': 'exact'}`, `{'linesearch':
      None, 'learning_rate': 1.0}` for pure Newton); values must be hashable.
    history: also record per-iteration 'fun', 'grad_norm' and 'nfev'.

  Returns:
    An `OptimizeResult` (x, fun, grad, grad_norm, iterations, converged,
    status and reason, nfev, njev, linesearch_status, history).

  Raises:
    ValueError: unknown method or option, non-finite or non-float x0, bad
      maxiter/tol.
  """
  if method not in METHODS:
    raise ValueError(f'method={method!r} is not one of {sorted(METHODS)}.')
  check_x0(x0)
  check_loop_args(maxiter, tol)
  if xtol is not None and not (np.isfinite(xtol) and xtol >= 0):
    raise ValueError(f'xtol={xtol!r} must be None or a finite number >= 0.')
  frozen = _freeze(options)
  try:
    METHODS[method](**dict(frozen))  # validates option names and values eagerly
  except TypeError as e:
    raise ValueError(f'options={options!r} do not fit method={method!r}: {e}') from e
  res = _run_jit(fun, x0, tol, -1.0 if xtol is None else xtol, tuple(args), method=method,
                 options=frozen,
                 maxiter=int(maxiter),
                 record_history=bool(history))
  return result_lib.truncate_history(res)
