"""Strong-Wolfe line search: bracketing phase, then zoom (cubic interpolation).

Finds α > 0 with

    f(x + α d) ≤ f(x) + c₁ α ∇f(x)ᵀd                          (sufficient decrease)
    |∇f(x + α d)ᵀd| ≤ c₂ |∇f(x)ᵀd|                             (strong curvature)

following Nocedal & Wright, Numerical Optimization, 2nd ed., Algorithms 3.5
(bracketing) and 3.6 (zoom). Both phases share one loop invariant, an interval
[α_lo, α_hi] (α_hi = "not yet bracketed" in the first phase) where α_lo is the
best point so far that satisfies sufficient decrease and φ'(α_lo)(α_hi − α_lo)
< 0. Each trial evaluates f and ∇f together. New trials come from the
minimiser of the cubic interpolating φ and φ' at the two ends (N&W eq. 3.59),
safeguarded into the inner 80% of the interval (bisection when the cubic is
degenerate); before bracketing, the cubic is extrapolated and clipped to
[2, 5] times the previous step. Non-finite trials count as failing sufficient
decrease, which makes the search back off instead of accepting an overflow.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from optim.second_order import linesearch_base as base


def _cubic_min(a, fa, ga, b, fb, gb):
  """Minimiser of the cubic through (a, fa, ga), (b, fb, gb) (N&W eq. 3.59)."""
  d1 = ga + gb - 3.0 * (fa - fb) / (a - b)
  d2sq = d1 * d1 - ga * gb
  d2 = jnp.sign(b - a) * jnp.sqrt(jnp.maximum(d2sq, 0.0))
  alpha = b - (b - a) * (gb + d2 - d1) / (gb - ga + 2.0 * d2)
  return jnp.where(d2sq >= 0, alpha, jnp.nan)


def _safe_interpolate(a_lo, f_lo, g_lo, a_hi, f_hi, g_hi):
  """Cubic minimiser kept in the inner 80% of [lo, hi]; bisection if degenerate."""
  alpha = _cubic_min(a_lo, f_lo, g_lo, a_hi, f_hi, g_hi)
  width = jnp.abs(a_hi - a_lo)
  left = jnp.minimum(a_lo, a_hi) + 0.1 * width
  right = jnp.maximum(a_lo, a_hi) - 0.1 * width
  mid = 0.5 * (a_lo + a_hi)
  return jnp.where(jnp.isfinite(alpha), jnp.clip(alpha, left, right), mid)


def zoom_search(value_and_grad_fn: base.ValueAndGradFn, x: jax.Array, d: jax.Array,
                value: jax.Array, grad: jax.Array, init_step: jax.Array, *,
                c1: float = 1e-4, c2: float = 0.9, max_evals: int = 30,
                max_step: float = 1e10) -> base.LineSearchResult:
  """Strong-Wolfe line search along `d` from `x` (flat vectors).

  Args:
    value_and_grad_fn: flat x ↦ (f(x), ∇f(x)).
    x: current point.
    d: search direction.
    value: f(x).
    grad: ∇f(x).
    init_step: first trial α₀ > 0.
    c1: sufficient-decrease constant.
    c2: curvature constant, c₁ < c₂ < 1 (0.9 for quasi-Newton, 0.1 for CG).
    max_evals: most trial evaluations of (f, ∇f).
    max_step: largest step tried while bracketing.

  Returns:
    A `LineSearchResult`. SUCCESS: both strong-Wolfe conditions hold at
    `step`. ARMIJO_ONLY: the budget ran out (or the interval collapsed to
    rounding) but a step with sufficient decrease was found and is returned.
    MAX_EVALS / NON_FINITE: no acceptable step, α = 0. NOT_DESCENT / FLAT /
    NON_FINITE before any trial when φ'(0) ≥ 0 or the start is non-finite.
  """
  dtype = x.dtype
  slope0 = jnp.vdot(grad, d)
  value = jnp.asarray(value, x.dtype)
  status0 = base.initial_checks(value, grad, d)
  eps = jnp.finfo(dtype).eps
  c1 = jnp.asarray(c1, dtype)
  c2 = jnp.asarray(c2, dtype)

  # Carry: next trial α, lo = (α, f, φ', ∇f), hi = (α, f, φ'), bracketed,
  # evals, accepted, last trial (α, f, ∇f), any finite trial, stalled.
  def cond(c):
    evals, accepted, stalled = c[9], c[10], c[15]
    return (~accepted) & (~stalled) & (evals < max_evals)

  def body(c):
    (a_t, a_lo, f_lo, s_lo, g_lo, a_hi, f_hi, s_hi, bracketed, evals, _, _, _, _,
     any_finite, _) = c
    f_t, g_t = value_and_grad_fn(x + a_t * d)
    f_t = f_t.astype(dtype)
    g_t = g_t.astype(grad.dtype)
    s_t = jnp.vdot(g_t, d)
    finite = jnp.isfinite(f_t) & jnp.isfinite(s_t)
    fails_decrease = (~finite) | (f_t > value + c1 * a_t * slope0) | (f_t >= f_lo)
    curvature_ok = jnp.abs(s_t) <= -c2 * slope0
    accepted = (~fails_decrease) & curvature_ok
    # Sign of φ' at t against the direction towards hi (hi = +∞ before bracketing).
    towards_hi = jnp.where(bracketed, jnp.sign(a_hi - a_lo), 1.0)
    move_lo = (~fails_decrease) & (~curvature_ok)
    flip = move_lo & (s_t * towards_hi >= 0)

    n_a_hi = jnp.where(fails_decrease, a_t, jnp.where(flip, a_lo, a_hi))
    n_f_hi = jnp.where(fails_decrease, f_t, jnp.where(flip, f_lo, f_hi))
    n_s_hi = jnp.where(fails_decrease, s_t, jnp.where(flip, s_lo, s_hi))
    n_bracketed = bracketed | fails_decrease | flip
    n_a_lo = jnp.where(move_lo, a_t, a_lo)
    n_f_lo = jnp.where(move_lo, f_t, f_lo)
    n_s_lo = jnp.where(move_lo, s_t, s_lo)
    n_g_lo = jnp.where(move_lo, g_t, g_lo)

    # Next trial: interpolate inside the bracket, or extrapolate beyond t.
    inside = _safe_interpolate(n_a_lo, n_f_lo, n_s_lo, n_a_hi, n_f_hi, n_s_hi)
    grow = a_t - a_lo
    beyond = _cubic_min(a_lo, f_lo, s_lo, a_t, f_t, s_t)
    beyond = jnp.where(jnp.isfinite(beyond) & (beyond > a_t), beyond, a_t + 4.0 * grow)
    beyond = jnp.minimum(jnp.clip(beyond, a_t + grow, a_t + 4.0 * grow), max_step)
    n_a_t = jnp.where(n_bracketed, inside, beyond)
    width = jnp.abs(n_a_hi - n_a_lo)
    stalled = jnp.where(
        n_bracketed, width <= 10 * eps * jnp.maximum(jnp.abs(n_a_lo), jnp.abs(n_a_hi)),
        n_a_t <= a_t)  # cannot extrapolate past max_step
    stalled = stalled & ~accepted
    return (n_a_t, n_a_lo, n_f_lo, n_s_lo, n_g_lo, n_a_hi, n_f_hi, n_s_hi, n_bracketed,
            evals + 1, accepted, a_t, f_t, g_t, any_finite | finite, stalled)

  def search(_):
    zero = jnp.zeros((), dtype)
    inf = jnp.asarray(jnp.inf, dtype)
    value_ = jnp.asarray(value, dtype)
    false = jnp.zeros((), bool)
    init = (jnp.asarray(init_step, dtype), zero, value_, slope0, grad, inf, inf, zero, false,
            jnp.zeros((), jnp.int32), false, zero, value_, grad, false, false)
    (_, a_lo, f_lo, _, g_lo, _, _, _, _, evals, accepted, a_t, f_t, g_t, any_finite,
     _) = jax.lax.while_loop(cond, body, init)
    step = jnp.where(accepted, a_t, a_lo)
    f = jnp.where(accepted, f_t, f_lo)
    g = jnp.where(accepted, g_t, g_lo)
    status = jnp.where(accepted, base.SUCCESS,
                       jnp.where(a_lo > 0, base.ARMIJO_ONLY,
                                 jnp.where(any_finite, base.MAX_EVALS, base.NON_FINITE)))
    return base.LineSearchResult(step, f, g, evals, evals, status.astype(jnp.int32))

  return jax.lax.cond(status0 == base.SUCCESS, search,
                      lambda _: base.no_step(value, grad, status0), None)
