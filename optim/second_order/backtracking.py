"""Backtracking line search with the Armijo sufficient-decrease condition.

Starting from α₀, shrink α ← ρα until

    f(x + α d) ≤ f(x) + c₁ α ∇f(x)ᵀd                         (Armijo)

(Nocedal & Wright, Numerical Optimization, 2nd ed., Algorithm 3.1). Trial
values that are not finite are treated as failing the condition, so a step
into an overflow region is shrunk rather than accepted. Only f is evaluated
during the search; ∇f is evaluated once at the accepted point.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from optim.second_order import linesearch_base as base


def backtracking_search(value_fn: base.ValueFn, grad_fn, x: jax.Array, d: jax.Array,
                        value: jax.Array, grad: jax.Array, init_step: jax.Array, *,
                        c1: float = 1e-4, shrink: float = 0.5,
                        max_evals: int = 30) -> base.LineSearchResult:
  """Armijo backtracking along `d` from `x` (flat vectors).

  Args:
    value_fn: flat x ↦ f(x).
    grad_fn: flat x ↦ ∇f(x), called once at the accepted point.
    x: current point.
    d: search direction.
    value: f(x).
    grad: ∇f(x).
    init_step: first trial α₀ > 0.
    c1: sufficient-decrease constant, 0 < c₁ < 1.
    shrink: contraction ρ ∈ (0, 1).
    max_evals: most trial evaluations of f.

  Returns:
    A `LineSearchResult`; status SUCCESS when the Armijo condition holds,
    else MAX_EVALS / NON_FINITE (when every trial was non-finite) with α = 0,
    or the pre-search failures of `linesearch_base.initial_checks`.
  """
  slope = jnp.vdot(grad, d)
  value = jnp.asarray(value, x.dtype)
  status0 = base.initial_checks(value, grad, d)
  dtype = x.dtype

  def cond(c):
    step, f, evals, accepted, _ = c
    return (~accepted) & (evals < max_evals)

  def body(c):
    step, _, evals, _, any_finite = c
    f = value_fn(x + step * d)
    finite = jnp.isfinite(f)
    accepted = finite & (f <= value + c1 * step * slope)
    new_step = jnp.where(accepted, step, step * shrink)
    return new_step, f, evals + 1, accepted, any_finite | finite

  def search(_):
    init = (jnp.asarray(init_step, dtype), jnp.asarray(value, dtype), jnp.zeros((), jnp.int32),
            jnp.zeros((), bool), jnp.zeros((), bool))
    step, f, evals, accepted, any_finite = jax.lax.while_loop(cond, body, init)
    step = jnp.where(accepted, step, 0.0).astype(dtype)
    f = jnp.where(accepted, f, value)
    g = jax.lax.cond(accepted, lambda: grad_fn(x + step * d).astype(grad.dtype), lambda: grad)
    status = jnp.where(accepted, base.SUCCESS,
                       jnp.where(any_finite, base.MAX_EVALS, base.NON_FINITE))
    return base.LineSearchResult(step, f, g, evals, accepted.astype(jnp.int32),
                                 status.astype(jnp.int32))

  return jax.lax.cond(status0 == base.SUCCESS, search,
                      lambda _: base.no_step(value, grad, status0), None)
