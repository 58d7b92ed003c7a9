"""L-BFGS: limited-memory BFGS direction by the two-loop recursion.

With the last m pairs sₖ = xₖ₊₁ − xₖ, yₖ = ∇fₖ₊₁ − ∇fₖ and ρₖ = 1/(yₖᵀsₖ), the
direction d = −H∇f applies the BFGS inverse-Hessian approximation

    Hₖ₊₁ = (I − ρₖ sₖyₖᵀ) Hₖ (I − ρₖ yₖsₖᵀ) + ρₖ sₖsₖᵀ,   H⁰ = γI,

implicitly, never storing a matrix (Nocedal, 1980; Nocedal & Wright,
Numerical Optimization, Algorithm 7.4). The initial scaling is
γ = sᵀy / yᵀy of the newest pair (N&W eq. 7.20).

Curvature safeguard: a pair is stored only when sᵀy > ε·yᵀy (ε =
`curvature_eps`); otherwise (non-convex region, or a line search that only
met sufficient decrease) it is skipped and the memory kept, so H stays
positive definite and d a descent direction.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree
import optax

from optim.second_order import linesearch as ls
from optim.second_order.curvature import curvature_pair


class ScaleByLBFGSState(NamedTuple):
  """State of `scale_by_lbfgs`: pairs stored oldest (row 0) to newest (row m−1).

  Attributes:
    count: number of updates (int32).
    params: flat params seen at the last update.
    grad: flat gradient seen at the last update.
    s_history: [m, n] steps sᵢ (zero rows are empty slots).
    y_history: [m, n] gradient changes yᵢ.
    rho_history: [m] ρᵢ = 1/(yᵢᵀsᵢ), 0 for empty slots.
    gamma: initial inverse-Hessian scale γ.
  """
  count: jax.Array
  params: jax.Array
  grad: jax.Array
  s_history: jax.Array
  y_history: jax.Array
  rho_history: jax.Array
  gamma: jax.Array


def two_loop(g: jax.Array, s_history: jax.Array, y_history: jax.Array,
             rho_history: jax.Array, gamma: jax.Array) -> jax.Array:
  """H·g by the two-loop recursion (rows oldest → newest; ρ = 0 rows are inert).

  Args:
    g: vector [n].
    s_history, y_history: [m, n] pairs.
    rho_history: [m] ρᵢ = 1/(yᵢᵀsᵢ), 0 for an empty slot.
    gamma: scale of H⁰ = γI.

  Returns:
    H·g, [n].
  """
  chex.assert_rank(g, 1)
  chex.assert_equal_shape([s_history, y_history])

  def backward(q, syr):
    s, y, rho = syr
    a = rho * jnp.vdot(s, q)
    return q - a * y, a

  q, alphas = jax.lax.scan(backward, g, (s_history, y_history, rho_history), reverse=True)

  def forward(r, syra):
    s, y, rho, a = syra
    b = rho * jnp.vdot(y, r)
    return r + (a - b) * s, None

  r, _ = jax.lax.scan(forward, gamma * q, (s_history, y_history, rho_history, alphas))
  return r


def scale_by_lbfgs(memory_size: int = 10, curvature_eps: float | None = None
                   ) -> optax.GradientTransformation:
  """Maps gradients to the L-BFGS descent direction −H∇f (no step size).

  Args:
    memory_size: number m of (s, y) pairs kept.
    curvature_eps: safeguard ε, a pair is kept only if sᵀy > ε·yᵀy; default
      the machine epsilon of the params' dtype.

  Returns:
    An `optax.GradientTransformation`; its `updates` input is ∇f at params.
  """
  if int(memory_size) != memory_size or memory_size < 1:
    raise ValueError(f'memory_size={memory_size!r} must be a positive integer.')
  if curvature_eps is not None and curvature_eps < 0:
    raise ValueError(f'curvature_eps={curvature_eps!r} must be >= 0.')

  def init_fn(params: optax.Params) -> ScaleByLBFGSState:
    x, _ = ravel_pytree(params)
    n = x.shape[0]
    return ScaleByLBFGSState(
        count=jnp.zeros((), jnp.int32), params=jnp.zeros_like(x), grad=jnp.zeros_like(x),
        s_history=jnp.zeros((memory_size, n), x.dtype),
        y_history=jnp.zeros((memory_size, n), x.dtype),
        rho_history=jnp.zeros((memory_size,), x.dtype), gamma=jnp.ones((), x.dtype))

  def update_fn(updates: optax.Updates, state: ScaleByLBFGSState,
                params: optax.Params = None) -> tuple[optax.Updates, ScaleByLBFGSState]:
    if params is None:
      raise ValueError('params=None: L-BFGS needs the current parameters.')
    x, _ = ravel_pytree(params)
    g, unravel = ravel_pytree(updates)
    g = g.astype(x.dtype)
    s, y, sy, yy, keep = curvature_pair(x, g, state.params, state.grad, state.count,
                                        curvature_eps)

    def push(history, row):
      return jnp.concatenate([history[1:], row[None]], axis=0)

    s_hist = jnp.where(keep, push(state.s_history, s), state.s_history)
    y_hist = jnp.where(keep, push(state.y_history, y), state.y_history)
    rho_hist = jnp.where(keep, push(state.rho_history, 1.0 / jnp.where(keep, sy, 1.0)),
                         state.rho_history)
    gamma = jnp.where(keep, sy / jnp.where(keep, yy, 1.0), state.gamma)
    direction = -two_loop(g, s_hist, y_hist, rho_hist, gamma)
    new_state = ScaleByLBFGSState(optax.safe_increment(state.count), x, g, s_hist, y_hist,
                                  rho_hist, gamma)
    return unravel(direction), new_state

  return optax.GradientTransformation(init_fn, update_fn)


def lbfgs(memory_size: int = 10, linesearch: Any = 'zoom', learning_rate: Any = None,
          curvature_eps: float | None = None, axis_name: str | None = None
          ) -> optax.GradientTransformationExtraArgs:
  """L-BFGS: two-loop direction, then a line search (strong Wolfe by default).

  Args:
    memory_size: number of (s, y) pairs kept.
    linesearch: 'zoom' (strong Wolfe, c₂ = 0.9), 'backtracking', 'exact', a
      line-search transform, or None for a fixed `learning_rate`.
    learning_rate: step (float or schedule) when `linesearch` is None.
    curvature_eps: safeguard ε of `scale_by_lbfgs`.
    axis_name: pmap axis over which `value_fn` averages (`lax.pmean`), e.g. the
      trainer's 'batch' in full-batch mode; derivatives of value_fn are
      averaged over it so every device takes the same step.

  Returns:
    An `optax.GradientTransformationExtraArgs`; call its update with
    `value=`, `grad=` and `value_fn=` keyword arguments.
  """
  return ls.with_step(scale_by_lbfgs(memory_size, curvature_eps), linesearch, learning_rate,
                   initial_step='scaled', axis_name=axis_name)
