"""Hessian-free Newton (truncated Newton-CG).

Solves ∇²f(x) d = −∇f(x) approximately by conjugate gradient using only
Hessian-vector products v ↦ ∇²f(x)v (forward-over-reverse: `jax.linearize`
of ∇f, so one linearisation serves every CG iteration), stopping at
‖∇²f d + ∇f‖ ≤ ηₖ‖∇f‖ with the forcing term ηₖ = min(0.5, √‖∇f‖) for
superlinear convergence, or on negative curvature (then the CG iterate so
far, or −∇f, which is still a descent direction). Nocedal & Wright,
Numerical Optimization, Algorithm 7.1. Memory O(n): usable on models.
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree
import optax

from optim.second_order import cg
from optim.second_order import derivatives
from optim.second_order import linesearch as ls


class ScaleByNewtonCGState(NamedTuple):
  """`count` (int32), CG iterations of the last solve, negative curvature met."""
  count: jax.Array
  cg_iterations: jax.Array
  negative_curvature: jax.Array


def scale_by_newton_cg(max_cg_iters: int = 50, axis_name: str | None = None
                       ) -> optax.GradientTransformationExtraArgs:
  """Maps ∇f to the truncated-CG Newton direction.

  Args:
    max_cg_iters: most Hessian-vector products per update.
    axis_name: pmap axis over which value_fn averages; Hessian-vector
      products are averaged over it (see `derivatives`).

  Returns:
    A transform whose update needs `value_fn=` as a keyword argument.
  """
  if int(max_cg_iters) != max_cg_iters or max_cg_iters < 1:
    raise ValueError(f'max_cg_iters={max_cg_iters!r} must be a positive integer.')

  def init_fn(params: optax.Params) -> ScaleByNewtonCGState:
    del params
    return ScaleByNewtonCGState(jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32),
                                jnp.zeros((), bool))

  def update_fn(updates: optax.Updates, state: ScaleByNewtonCGState,
                params: optax.Params = None, *, value_fn: Callable[..., jax.Array],
                **extra_args: Any) -> tuple[optax.Updates, ScaleByNewtonCGState]:
    del extra_args
    if params is None:
      raise ValueError('params=None: Newton-CG needs the current parameters.')
    x, unravel_x = ravel_pytree(params)
    g, unravel = ravel_pytree(updates)
    g = g.astype(x.dtype)
    hvp = derivatives.hvp_fn(lambda z: value_fn(unravel_x(z)), x, axis_name)
    gnorm = jnp.linalg.norm(g)
    tol = jnp.minimum(0.5, jnp.sqrt(gnorm)) * gnorm
    res = cg.conjugate_gradient(lambda v: hvp(v).astype(x.dtype), -g, tol, max_cg_iters)
    new_state = ScaleByNewtonCGState(optax.safe_increment(state.count), res.iterations,
                                     res.negative_curvature)
    return unravel(res.x), new_state

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def newton_cg(linesearch: Any = 'backtracking', learning_rate: Any = None,
              max_cg_iters: int = 50, axis_name: str | None = None
              ) -> optax.GradientTransformationExtraArgs:
  """Hessian-free Newton-CG with a line search (Armijo backtracking from α₀ = 1).

  Args:
    linesearch: 'backtracking', 'zoom', 'exact', a transform, or None.
    learning_rate: step when `linesearch` is None.
    max_cg_iters: most Hessian-vector products per update.
    axis_name: pmap axis over which `value_fn` averages (`lax.pmean`), e.g. the
      trainer's 'batch' in full-batch mode; derivatives of value_fn are
      averaged over it so every device takes the same step.

  Returns:
    An `optax.GradientTransformationExtraArgs` (update takes `value=`,
    `grad=`, `value_fn=`).
  """
  return ls.with_step(scale_by_newton_cg(max_cg_iters, axis_name), linesearch, learning_rate,
                      initial_step='unit', axis_name=axis_name)
