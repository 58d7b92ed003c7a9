"""Conjugate gradient for A p = b with a matrix-free A, stopping on negative curvature.

Hestenes & Stiefel (1952) CG, in the truncated form used by Newton-CG and
inexact Gauss-Newton (Nocedal & Wright, Numerical Optimization, Algorithm
7.1): iterate from p = 0 until ‖b − Ap‖ ≤ tol or `maxiter` iterations; if a
search direction dⱼ has dⱼᵀAdⱼ ≤ 0 (A not positive definite along it), stop
and return the current p, or b itself when that happens on the first
iteration (for Newton-CG b = −∇f, so that is steepest descent).
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import chex
import jax
import jax.numpy as jnp


class CGResult(NamedTuple):
  """Solution `x`, iterations used, and whether negative curvature stopped CG."""
  x: jax.Array
  iterations: jax.Array
  negative_curvature: jax.Array


def conjugate_gradient(matvec: Callable[[jax.Array], jax.Array], b: jax.Array, tol: jax.Array,
                       maxiter: int) -> CGResult:
  """Truncated CG for A x = b (flat vectors); A given by `matvec`.

  Args:
    matvec: v ↦ A v.
    b: right-hand side [n].
    tol: absolute tolerance on the residual norm ‖b − Ax‖₂.
    maxiter: most CG iterations (matrix-vector products).

  Returns:
    A `CGResult`.
  """
  chex.assert_rank(b, 1)
  tiny = jnp.finfo(b.dtype).tiny

  def cond(c):
    _, r, _, rr, j, stop = c
    return (~stop) & (j < maxiter) & (jnp.sqrt(rr) > tol)

  def body(c):
    x, r, d, rr, j, _ = c
    ad = matvec(d)
    dad = jnp.vdot(d, ad)
    negative = dad <= 0
    alpha = rr / jnp.where(negative, 1.0, dad)
    x_new = x + alpha * d
    r_new = r - alpha * ad
    rr_new = jnp.vdot(r_new, r_new)
    d_new = r_new + (rr_new / jnp.maximum(rr, tiny)) * d
    keep = lambda old, new: jnp.where(negative, old, new)  # noqa: E731
    # Negative curvature on the first iteration: fall back to b.
    x_out = jnp.where(negative & (j == 0), b, keep(x, x_new))
    return (x_out, keep(r, r_new), keep(d, d_new), keep(rr, rr_new), j + 1, negative)

  zero = jnp.zeros_like(b)
  init = (zero, b, b, jnp.vdot(b, b), jnp.zeros((), jnp.int32), jnp.zeros((), bool))
  x, _, _, _, j, negative = jax.lax.while_loop(cond, body, init)
  return CGResult(x, j, negative)
