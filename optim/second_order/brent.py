"""Exact line search: α* = argmin_{α ≥ 0} f(x + α d) by bracketing and Brent's method.

The "optimal learning rate" of steepest descent. Two phases, each a
`lax.while_loop`:

1. Bracketing: find 0 ≤ a < b < c with φ(b) < φ(a) and φ(b) ≤ φ(c), growing
   the trial by the golden ratio while φ keeps falling (Numerical Recipes
   `mnbrak` without its parabolic extrapolation) and shrinking it when the
   first trial is already higher than φ(0).
2. Brent's method (R. P. Brent, Algorithms for Minimization without
   Derivatives, 1973, ch. 5): golden-section steps, replaced by the minimum of
   the parabola through the three best points whenever that step is safe,
   until the bracket is narrower than 2·(rtol·|α| + atol). On a quadratic the
   parabola is exact, so the analytic step gᵀg / gᵀHg is found in a few
   evaluations.

Only f is evaluated during the search; ∇f once at the accepted point.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from optim.second_order import linesearch_base as base

_GOLD = 1.618033988749895          # golden ratio, bracket growth factor
_CGOLD = 0.3819660112501051        # 2 − golden ratio, golden-section fraction


def exact_search(value_fn: base.ValueFn, grad_fn, x: jax.Array, d: jax.Array,
                 value: jax.Array, grad: jax.Array, init_step: jax.Array, *,
                 rtol: float = 1e-8, atol: float = 1e-12, max_evals: int = 100,
                 max_step: float = 1e10) -> base.LineSearchResult:
  """argmin over α ≥ 0 of f(x + α d) (flat vectors).

  Args:
    value_fn: flat x ↦ f(x).
    grad_fn: flat x ↦ ∇f(x), called once at the accepted point.
    x: current point.
    d: search direction (must be a descent direction).
    value: f(x).
    grad: ∇f(x).
    init_step: first trial of the bracketing phase.
    rtol, atol: Brent's tolerance on α, rtol·|α| + atol.
    max_evals: evaluation budget shared by both phases.
    max_step: bracketing gives up (MAX_EVALS) past this step.

  Returns:
    A `LineSearchResult`: SUCCESS with the minimiser to the tolerance;
    MAX_EVALS when no bracket was found (φ decreasing up to `max_step`: the
    function may be unbounded below along d) or Brent ran out of budget; the
    best point found is returned whenever it lowers f.
  """
  dtype = x.dtype
  slope = jnp.vdot(grad, d)
  value = jnp.asarray(value, x.dtype)
  status0 = base.initial_checks(value, grad, d)

  def phi(a):  # non-finite values count as +inf, so they bound the bracket
    f = value_fn(x + a * d).astype(dtype)
    return jnp.where(jnp.isfinite(f), f, jnp.inf)

  f0 = jnp.asarray(value, dtype)
  rtol = jnp.maximum(jnp.asarray(rtol, dtype), 2 * jnp.sqrt(jnp.finfo(dtype).eps))

  def bracket():
    # Carry: (a, fa, b, fb, c, fc, evals, done). Start: a = 0, b = α₀.
    b0 = jnp.asarray(init_step, dtype)
    fb0 = phi(b0)

    def cond(s):
      return (~s[7]) & (s[6] < max_evals // 2)

    def body(s):
      a, fa, b, fb, c, fc, evals, _ = s
      shrinking = ~(fb < fa)  # first trial too long (or non-finite): pull b in
      trial = jnp.where(shrinking, a + (b - a) / _GOLD ** 2, b + _GOLD * (b - a))
      ft = phi(trial)
      # Shrinking: c ← b, b ← trial. Growing: (a, b, c) ← (b, c?, trial).
      n_a = jnp.where(shrinking, a, jnp.where(ft < fb, b, a))
      n_fa = jnp.where(shrinking, fa, jnp.where(ft < fb, fb, fa))
      n_b = jnp.where(shrinking, trial, jnp.where(ft < fb, trial, b))
      n_fb = jnp.where(shrinking, ft, jnp.where(ft < fb, ft, fb))
      n_c = jnp.where(shrinking, b, jnp.where(ft < fb, c, trial))
      n_fc = jnp.where(shrinking, fb, jnp.where(ft < fb, fc, ft))
      done = (n_fb < n_fa) & (n_fb <= n_fc) & jnp.isfinite(n_c)
      done = done | (trial > max_step)
      return n_a, n_fa, n_b, n_fb, n_c, n_fc, evals + 1, done

    inf = jnp.asarray(jnp.inf, dtype)
    zero = jnp.zeros((), dtype)
    s = (zero, f0, b0, fb0, inf, inf, jnp.ones((), jnp.int32), jnp.zeros((), bool))
    a, fa, b, fb, c, fc, evals, _ = jax.lax.while_loop(cond, body, s)
    found = (fb < fa) & (fb <= fc) & jnp.isfinite(c)
    return a, b, fb, c, evals, found

  def brent(a, b, fb, c, evals):
    # Brent's localmin on [a, c], starting from the bracket's inner point b.
    def cond(s):
      lo, hi, x_, _, _, _, _, _, _, _, ev = s
      tol = rtol * jnp.abs(x_) + atol
      mid = 0.5 * (lo + hi)
      return (jnp.abs(x_ - mid) > 2 * tol - 0.5 * (hi - lo)) & (ev < max_evals)

    def body(s):
      lo, hi, x_, fx, w, fw, v, fv, dstep, e, ev = s
      tol = rtol * jnp.abs(x_) + atol
      tol2 = 2 * tol
      mid = 0.5 * (lo + hi)
      # Parabola through (v, fv), (w, fw), (x, fx).
      r = (x_ - w) * (fx - fv)
      q = (x_ - v) * (fx - fw)
      p = (x_ - v) * q - (x_ - w) * r
      q = 2 * (q - r)
      p = jnp.where(q > 0, -p, p)
      q = jnp.abs(q)
      try_parabola = jnp.abs(e) > tol
      parabola_ok = (try_parabola & (jnp.abs(p) < jnp.abs(0.5 * q * e))
                     & (p > q * (lo - x_)) & (p < q * (hi - x_)))
      para_d = p / jnp.where(q == 0, 1, q)
      u_para = x_ + para_d
      para_d = jnp.where((u_para - lo < tol2) | (hi - u_para < tol2),
                         jnp.where(x_ < mid, tol, -tol), para_d)
      gold_e = jnp.where(x_ < mid, hi - x_, lo - x_)
      n_e = jnp.where(parabola_ok, dstep, gold_e)
      n_d = jnp.where(parabola_ok, para_d, _CGOLD * gold_e)
      u = x_ + jnp.where(jnp.abs(n_d) >= tol, n_d, jnp.where(n_d > 0, tol, -tol))
      fu = phi(u)
      better = fu <= fx
      n_lo = jnp.where(better, jnp.where(u < x_, lo, x_), jnp.where(u < x_, u, lo))
      n_hi = jnp.where(better, jnp.where(u < x_, x_, hi), jnp.where(u < x_, hi, u))
      # Update the three best points x (best), w (second), v (third).
      second = (~better) & ((fu <= fw) | (w == x_))
      third = (~better) & (~second) & ((fu <= fv) | (v == x_) | (v == w))
      n_v = jnp.where(better | second, w, jnp.where(third, u, v))
      n_fv = jnp.where(better | second, fw, jnp.where(third, fu, fv))
      n_w = jnp.where(better, x_, jnp.where(second, u, w))
      n_fw = jnp.where(better, fx, jnp.where(second, fu, fw))
      n_x = jnp.where(better, u, x_)
      n_fx = jnp.where(better, fu, fx)
      return n_lo, n_hi, n_x, n_fx, n_w, n_fw, n_v, n_fv, n_d, n_e, ev + 1

    zero = jnp.zeros((), dtype)
    s = (a, c, b, fb, b, fb, b, fb, zero, zero, evals)
    lo, hi, x_, fx, _, _, _, _, _, _, ev = jax.lax.while_loop(cond, body, s)
    converged = jnp.abs(x_ - 0.5 * (lo + hi)) <= 2 * (rtol * jnp.abs(x_) + atol) - 0.5 * (hi - lo)
    return x_, fx, ev, converged

  def search(_):
    a, b, fb, c, evals, found = bracket()
    step, f, evals, converged = jax.lax.cond(
        found, lambda: brent(a, b, fb, c, evals), lambda: (b, fb, evals, jnp.zeros((), bool)))
    lowered = jnp.isfinite(f) & (f < f0)
    step = jnp.where(lowered, step, 0.0).astype(dtype)
    f = jnp.where(lowered, f, f0)
    g = jax.lax.cond(lowered, lambda: grad_fn(x + step * d).astype(grad.dtype), lambda: grad)
    status = jnp.where(found & converged & lowered, base.SUCCESS, base.MAX_EVALS)
    status = jnp.where(jnp.isfinite(fb) | lowered, status, base.NON_FINITE)
    return base.LineSearchResult(step, f, g, evals, lowered.astype(jnp.int32),
                                 status.astype(jnp.int32))

  return jax.lax.cond(status0 == base.SUCCESS, search,
                      lambda _: base.no_step(value, grad, status0), None)
