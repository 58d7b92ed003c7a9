"""Line searches as optax transforms: scale a search direction by a step size.

Each factory returns an `optax.GradientTransformationExtraArgs` whose update
receives a *descent direction* d as `updates` (e.g. −H∇f from a quasi-Newton
transform earlier in the chain) and returns α·d, with α chosen by the search
on φ(α) = f(params + α d). As in `optax.scale_by_zoom_linesearch`, update
takes keyword extra args

    tx.update(d, state, params, value=f(params), grad=∇f(params), value_fn=f)

(`value_fn(params) -> scalar`; other extra args are ignored, so bind data with
`functools.partial`). The state records the step, the function value and
gradient at the new params (so a caller can reuse them instead of
re-evaluating), the evaluations spent and a status code from
`linesearch_base` saying which conditions the step meets.

Initial trial step α₀ (`initial_step`):
- 'unit': α₀ = 1 (Newton steps are already well scaled).
- 'scaled': α₀ = min(1, 1/‖d‖₂) on the first update, then 1 (quasi-Newton:
  the first direction is the raw gradient; L-BFGS-B does the same).
- 'quadratic': first as 'scaled', then α₀ = min(1, 1.01·2(f_k − f_{k−1})/φ'(0)),
  the minimiser of the quadratic through f_{k−1}, f_k and φ'(0) (Nocedal &
  Wright eq. 3.60) capped at the quasi-Newton step 1 (scipy's BFGS does this).
- 'adaptive': the same without the cap at 1 (up to `max_step`), for methods
  whose directions are badly scaled (gradient descent).
"""
from __future__ import annotations

import inspect
from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree
import optax

from optim.second_order import backtracking
from optim.second_order import brent
from optim.second_order import derivatives
from optim.second_order import linesearch_base as base
from optim.second_order import zoom

INITIAL_STEPS = ('unit', 'scaled', 'quadratic', 'adaptive')


class LineSearchState(NamedTuple):
  """State of a line-search transform.

  Attributes:
    count: number of updates done (int32).
    learning_rate: the step α of the last update.
    value: f at the params after the last update (params + α d).
    grad: ∇f there, a pytree like params.
    prev_value: f at the params the last update started from.
    num_value_evals: evaluations of f spent by the last search.
    num_grad_evals: evaluations of ∇f spent by the last search.
    status: `linesearch_base` status code of the last search.
  """
  count: jax.Array
  learning_rate: jax.Array
  value: jax.Array
  grad: optax.Updates
  prev_value: jax.Array
  num_value_evals: jax.Array
  num_grad_evals: jax.Array
  status: jax.Array


def _check_initial_step(initial_step: str) -> None:
  if initial_step not in INITIAL_STEPS:
    raise ValueError(f'initial_step={initial_step!r} is not one of {INITIAL_STEPS}.')


def _check_open_unit(name: str, v: float) -> None:
  if not 0.0 < v < 1.0:
    raise ValueError(f'{name}={v!r} must lie in the open interval (0, 1).')


def _check_positive_int(name: str, v: int) -> None:
  if int(v) != v or v < 1:
    raise ValueError(f'{name}={v!r} must be a positive integer.')


def first_trial_step(initial_step: str, count: jax.Array, d: jax.Array, slope: jax.Array,
                     value: jax.Array, prev_value: jax.Array, max_step: float) -> jax.Array:
  """α₀ for the rule `initial_step` (see the module docstring)."""
  dtype = d.dtype
  one = jnp.ones((), dtype)
  if initial_step == 'unit':
    return one
  first = jnp.minimum(one, 1.0 / jnp.linalg.norm(d))
  if initial_step == 'scaled':
    later = one
  else:
    later = 1.01 * 2.0 * (value - prev_value) / slope
    cap = one if initial_step == 'quadratic' else max_step
    later = jnp.where(jnp.isfinite(later) & (later > 0), jnp.minimum(later, cap), one)
  step = jnp.where(count == 0, first, later)
  return jnp.where(jnp.isfinite(step) & (step > 0), step, one).astype(dtype)


def _linesearch_transform(search: Callable[..., base.LineSearchResult], initial_step: str,
                          max_step: float) -> optax.GradientTransformationExtraArgs:
  """Wraps a flat-vector search `search(f, x, d, value, grad, α₀)` as a transform."""

  def init_fn(params: optax.Params) -> LineSearchState:
    flat, _ = ravel_pytree(params)
    inf = jnp.asarray(jnp.inf, flat.dtype)
    zero = jnp.zeros((), jnp.int32)
    return LineSearchState(count=zero, learning_rate=jnp.zeros((), flat.dtype), value=inf,
                           grad=jax.tree.map(jnp.zeros_like, params), prev_value=inf,
                           num_value_evals=zero, num_grad_evals=zero, status=zero)

  def update_fn(updates: optax.Updates, state: LineSearchState, params: optax.Params = None, *,
                value: jax.Array, grad: optax.Updates, value_fn: Callable[..., jax.Array],
                **extra_args: Any) -> tuple[optax.Updates, LineSearchState]:
    del extra_args
    if params is None:
      raise ValueError('params=None: line searches need the current parameters.')
    x, unravel = ravel_pytree(params)
    d, _ = ravel_pytree(updates)
    g, _ = ravel_pytree(grad)
    d = d.astype(x.dtype)
    g = g.astype(x.dtype)
    value = jnp.asarray(value, x.dtype)
    f = lambda z: jnp.asarray(value_fn(unravel(z)), x.dtype)  # noqa: E731
    slope = jnp.vdot(g, d)
    alpha0 = first_trial_step(initial_step, state.count, d, slope, value, state.prev_value,
                              max_step)
    res = search(f, x, d, value, g, alpha0)
    new_updates = unravel(res.step * d)
    new_state = LineSearchState(
        count=optax.safe_increment(state.count), learning_rate=res.step, value=res.value,
        grad=unravel(res.grad), prev_value=value, num_value_evals=res.num_value_evals,
        num_grad_evals=res.num_grad_evals, status=res.status)
    return new_updates, new_state

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def backtracking_linesearch(c1: float = 1e-4, shrink: float = 0.5, max_evals: int = 30,
                            initial_step: str = 'unit', max_step: float = 1e10,
                            axis_name: Optional[str] = None
                            ) -> optax.GradientTransformationExtraArgs:
  """Armijo backtracking: α ← ρα from α₀ until f(x+αd) ≤ f(x) + c₁α∇fᵀd.

  Args:
    c1: sufficient-decrease constant in (0, 1).
    shrink: contraction factor ρ in (0, 1).
    max_evals: most evaluations of f per search.
    initial_step: rule for α₀: 'unit', 'scaled' or 'quadratic'.
    max_step: cap on α₀.
    axis_name: pmap axis over which `value_fn` averages with `lax.pmean`;
      gradients of value_fn are then averaged over it (see `derivatives`).

  Returns:
    A transform scaling the direction by the accepted step (status SUCCESS),
    or by 0 when the search failed (status says why).
  """
  _check_open_unit('c1', c1)
  _check_open_unit('shrink', shrink)
  _check_positive_int('max_evals', max_evals)
  _check_initial_step(initial_step)

  def search(f, x, d, value, g, alpha0):
    return backtracking.backtracking_search(f, derivatives.grad(f, axis_name), x, d, value, g,
                                            alpha0, c1=c1, shrink=shrink, max_evals=max_evals)

  return _linesearch_transform(search, initial_step, max_step)


def zoom_linesearch(c1: float = 1e-4, c2: float = 0.9, max_evals: int = 30,
                    initial_step: str = 'scaled', max_step: float = 1e10,
                    axis_name: Optional[str] = None
                    ) -> optax.GradientTransformationExtraArgs:
  """Strong-Wolfe line search (bracketing + zoom, Nocedal & Wright Alg. 3.5/3.6).

  Args:
    c1: sufficient-decrease constant in (0, 1).
    c2: curvature constant in (c1, 1); 0.9 for (quasi-)Newton, 0.1 for CG.
    max_evals: most evaluations of (f, ∇f) per search.
    initial_step: rule for α₀: 'unit', 'scaled' or 'quadratic'.
    max_step: largest step tried.
    axis_name: pmap axis over which `value_fn` averages with `lax.pmean`;
      gradients of value_fn are then averaged over it (see `derivatives`).

  Returns:
    A transform scaling the direction by a strong-Wolfe step (status
    SUCCESS), by a sufficient-decrease-only step (ARMIJO_ONLY), or by 0.
  """
  _check_open_unit('c1', c1)
  _check_open_unit('c2', c2)
  if not c1 < c2:
    raise ValueError(f'c2={c2!r} must exceed c1={c1!r} (0 < c1 < c2 < 1).')
  _check_positive_int('max_evals', max_evals)
  _check_initial_step(initial_step)

  def search(f, x, d, value, g, alpha0):
    return zoom.zoom_search(derivatives.value_and_grad(f, axis_name), x, d, value, g, alpha0,
                            c1=c1, c2=c2, max_evals=max_evals, max_step=max_step)

  return _linesearch_transform(search, initial_step, max_step)


def exact_linesearch(rtol: float = 1e-8, atol: float = 1e-12, max_evals: int = 100,
                     initial_step: str = 'scaled', max_step: float = 1e10,
                     axis_name: Optional[str] = None
                     ) -> optax.GradientTransformationExtraArgs:
  """Exact search α* = argmin_{α≥0} f(x + αd) (bracketing + Brent's method).

  Args:
    rtol, atol: tolerance on α (rtol·|α| + atol).
    max_evals: most evaluations of f per search.
    initial_step: rule for the first bracketing trial.
    max_step: bracketing gives up past this step.
    axis_name: pmap axis over which `value_fn` averages with `lax.pmean`;
      gradients of value_fn are then averaged over it (see `derivatives`).

  Returns:
    A transform scaling the direction by the 1-D minimiser.
  """
  if rtol <= 0 or atol < 0:
    raise ValueError(f'rtol={rtol!r} must be > 0 and atol={atol!r} >= 0.')
  _check_positive_int('max_evals', max_evals)
  _check_initial_step(initial_step)

  def search(f, x, d, value, g, alpha0):
    return brent.exact_search(f, derivatives.grad(f, axis_name), x, d, value, g, alpha0,
                              rtol=rtol, atol=atol, max_evals=max_evals, max_step=max_step)

  return _linesearch_transform(search, initial_step, max_step)


LINESEARCHES: dict[str, Callable[..., optax.GradientTransformationExtraArgs]] = {
    'backtracking': backtracking_linesearch,
    'zoom': zoom_linesearch,
    'exact': exact_linesearch,
}


def resolve_linesearch(linesearch: Any, **defaults: Any
                       ) -> optax.GradientTransformationExtraArgs | None:
  """`None` (or 'none': a fixed step), a name from LINESEARCHES (built with `defaults`)
  or a transform."""
  if linesearch == 'none':
    return None
  if linesearch is None or isinstance(linesearch, optax.GradientTransformation):
    return linesearch
  if isinstance(linesearch, str):
    if linesearch not in LINESEARCHES:
      raise ValueError(f'linesearch={linesearch!r} is not one of {sorted(LINESEARCHES)}, '
                       "'none' (a fixed learning_rate), or a line-search transform.")
    factory = LINESEARCHES[linesearch]
    accepted = inspect.signature(factory).parameters
    return factory(**{k: v for k, v in defaults.items() if k in accepted})
  raise ValueError(f'linesearch={linesearch!r} must be None, one of {sorted(LINESEARCHES)} '
                   'or a line-search transform.')


def with_step(direction: optax.GradientTransformation, linesearch: Any,
              learning_rate: float | None, **linesearch_defaults: Any
              ) -> optax.GradientTransformationExtraArgs:
  """chain(direction, line search) or chain(direction, scale(learning_rate))."""
  search = resolve_linesearch(linesearch, **linesearch_defaults)
  if search is None:
    if learning_rate is None:
      raise ValueError('linesearch=None needs a learning_rate (float or schedule).')
    step = (optax.scale_by_schedule(learning_rate) if callable(learning_rate)
            else optax.scale(learning_rate))
  else:
    if learning_rate is not None:
      raise ValueError(f'learning_rate={learning_rate!r} is only used with linesearch=None; '
                       'the line search chooses the step.')
    step = search
  return optax.chain(direction, step)
