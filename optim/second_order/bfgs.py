"""BFGS: dense inverse-Hessian approximation with rank-2 updates.

With sₖ = xₖ₊₁ − xₖ, yₖ = ∇fₖ₊₁ − ∇fₖ, ρₖ = 1/(yₖᵀsₖ):

    Hₖ₊₁ = (I − ρₖ sₖyₖᵀ) Hₖ (I − ρₖ yₖsₖᵀ) + ρₖ sₖsₖᵀ        (N&W eq. 6.17)

and the direction is d = −Hₖ∇fₖ. H starts at I, as in scipy's BFGS; with
`initial_scaling` it is rescaled to (yᵀs / yᵀy)·I just before the first
update (N&W eq. 6.20), which helps when I has the wrong scale but costs
evaluations when the first step probed only the stiffest direction.
Curvature safeguard as in L-BFGS: the update is skipped when sᵀy ≤ ε·yᵀy,
keeping H positive definite. O(n²) memory: for small problems; use L-BFGS
for models.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree
import optax

from optim.second_order import linesearch as ls
from optim.second_order.curvature import curvature_pair


class ScaleByBFGSState(NamedTuple):
  """State of `scale_by_bfgs`.

  Attributes:
    count: number of updates (int32).
    params: flat params seen at the last update.
    grad: flat gradient seen at the last update.
    inv_hessian: [n, n] current approximation H of the inverse Hessian.
    num_pairs: number of (s, y) pairs applied so far (int32).
  """
  count: jax.Array
  params: jax.Array
  grad: jax.Array
  inv_hessian: jax.Array
  num_pairs: jax.Array


def bfgs_update(h: jax.Array, s: jax.Array, y: jax.Array) -> jax.Array:
  """One BFGS inverse update, expanded: H − ρ(s·(Hy)ᵀ + Hy·sᵀ) + (ρ²yᵀHy + ρ)ssᵀ."""
  rho = 1.0 / jnp.vdot(y, s)
  hy = h @ y
  return (h - rho * (jnp.outer(s, hy) + jnp.outer(hy, s))
          + (rho * rho * jnp.vdot(y, hy) + rho) * jnp.outer(s, s))


def scale_by_bfgs(curvature_eps: float | None = None, initial_scaling: bool = False
                  ) -> optax.GradientTransformation:
  """Maps gradients to the BFGS descent direction −H∇f (no step size).

  Args:
    curvature_eps: safeguard ε, a pair is used only if sᵀy > ε·yᵀy; default
      the machine epsilon of the params' dtype.
    initial_scaling: rescale H = I to (yᵀs/yᵀy)·I before the first update.

  Returns:
    An `optax.GradientTransformation`; its `updates` input is ∇f at params.
  """
  if curvature_eps is not None and curvature_eps < 0:
    raise ValueError(f'curvature_eps={curvature_eps!r} must be >= 0.')

  def init_fn(params: optax.Params) -> ScaleByBFGSState:
    x, _ = ravel_pytree(params)
    n = x.shape[0]
    zero = jnp.zeros((), jnp.int32)
    return ScaleByBFGSState(zero, jnp.zeros_like(x), jnp.zeros_like(x),
                            jnp.eye(n, dtype=x.dtype), zero)

  def update_fn(updates: optax.Updates, state: ScaleByBFGSState,
                params: optax.Params = None) -> tuple[optax.Updates, ScaleByBFGSState]:
    if params is None:
      raise ValueError('params=None: BFGS needs the current parameters.')
    x, _ = ravel_pytree(params)
    g, unravel = ravel_pytree(updates)
    g = g.astype(x.dtype)
    s, y, sy, yy, keep = curvature_pair(x, g, state.params, state.grad, state.count,
                                        curvature_eps)
    h = jnp.where(keep & (state.num_pairs == 0) & initial_scaling,
                  (sy / jnp.where(keep, yy, 1.0)) * jnp.eye(x.shape[0], dtype=x.dtype),
                  state.inv_hessian)
    h = jax.lax.cond(keep, lambda: bfgs_update(h, s, y), lambda: h)
    direction = -(h @ g)
    new_state = ScaleByBFGSState(optax.safe_increment(state.count), x, g, h,
                                 state.num_pairs + keep.astype(jnp.int32))
    return unravel(direction), new_state

  return optax.GradientTransformation(init_fn, update_fn)


def bfgs(linesearch: Any = 'zoom', learning_rate: Any = None,
         curvature_eps: float | None = None, initial_scaling: bool = False,
         axis_name: str | None = None) -> optax.GradientTransformationExtraArgs:
  """BFGS: dense inverse-Hessian direction, then a line search (strong Wolfe).

  Args:
    linesearch: 'zoom', 'backtracking', 'exact', a line-search transform, or
      None for a fixed `learning_rate`.
    learning_rate: step (float or schedule) when `linesearch` is None.
    curvature_eps: safeguard ε of `scale_by_bfgs`.
    initial_scaling: γ-rescaling of H before the first update (N&W eq. 6.20).
    axis_name: pmap axis over which `value_fn` averages (`lax.pmean`), e.g. the
      trainer's 'batch' in full-batch mode; derivatives of value_fn are
      averaged over it so every device takes the same step.

  Returns:
    An `optax.GradientTransformationExtraArgs` (update takes `value=`,
    `grad=`, `value_fn=`).
  """
  return ls.with_step(scale_by_bfgs(curvature_eps, initial_scaling), linesearch, learning_rate,
                      initial_step='quadratic', axis_name=axis_name)
