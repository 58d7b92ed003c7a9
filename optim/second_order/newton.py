"""Newton's method with the exact Hessian, Cholesky solve and damping.

d = −(H + τI)⁻¹∇f with H = ∇²f(x) from `jax.hessian`. τ = 0 when H is
positive definite; otherwise τ starts at −min(Hᵢᵢ) + β (or β) and doubles
until the Cholesky factorisation of H + τI succeeds ("Cholesky with added
multiple of the identity", Nocedal & Wright, Numerical Optimization,
Algorithm 3.3), so d is always a descent direction. β = `damping`·max|Hᵢᵢ|.
O(n²) memory and O(n³) time: for small problems; `newton_cg` scales.
Without a line search and with learning rate 1 this is pure Newton, which
converges quadratically near a minimiser (Rosenbrock from (−1.2, 1): 6 steps).
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree
import optax

from optim.second_order import derivatives
from optim.second_order import linesearch as ls


class ScaleByNewtonState(NamedTuple):
  """`count` (int32) and the shift τ added to the Hessian at the last update."""
  count: jax.Array
  damping: jax.Array


def damped_cholesky_solve(h: jax.Array, b: jax.Array, damping: float = 1e-3,
                          max_tries: int = 60) -> tuple[jax.Array, jax.Array]:
  """Solves (H + τI) x = b with the smallest τ of the doubling sequence that is PD.

  Args:
    h: symmetric [n, n] matrix.
    b: right-hand side [n].
    damping: β relative to max|Hᵢᵢ|, the first non-zero shift.
    max_tries: most factorisations.

  Returns:
    (x, τ); x is NaN when no shift within `max_tries` made H + τI PD (H
    non-finite).
  """
  n = h.shape[0]
  eye = jnp.eye(n, dtype=h.dtype)
  diag = jnp.diagonal(h)
  beta = damping * jnp.maximum(jnp.max(jnp.abs(diag)), jnp.finfo(h.dtype).tiny)
  tau0 = jnp.where(jnp.min(diag) > 0, 0.0, beta - jnp.min(diag)).astype(h.dtype)

  def factor(tau):
    chol = jnp.linalg.cholesky(h + tau * eye)
    return chol, jnp.all(jnp.isfinite(chol))

  def cond(c):
    _, _, ok, tries = c
    return (~ok) & (tries < max_tries)

  def body(c):
    tau, _, _, tries = c
    tau = jnp.maximum(2.0 * tau, beta)
    chol, ok = factor(tau)
    return tau, chol, ok, tries + 1

  chol0, ok0 = factor(tau0)
  tau, chol, _, _ = jax.lax.while_loop(cond, body, (tau0, chol0, ok0, jnp.zeros((), jnp.int32)))
  x = jax.scipy.linalg.cho_solve((chol, True), b)
  return x, tau


def scale_by_newton(damping: float = 1e-3, axis_name: str | None = None
                    ) -> optax.GradientTransformationExtraArgs:
  """Maps ∇f to the (damped) Newton direction −(∇²f + τI)⁻¹∇f.

  Args:
    damping: β of `damped_cholesky_solve`, relative to max|Hᵢᵢ|.
    axis_name: pmap axis over which value_fn averages; the Hessian is
      averaged over it (see `derivatives`).

  Returns:
    A transform whose update needs `value_fn=` (the objective, for its
    Hessian) as a keyword argument.
  """
  if damping <= 0:
    raise ValueError(f'damping={damping!r} must be > 0.')

  def init_fn(params: optax.Params) -> ScaleByNewtonState:
    x, _ = ravel_pytree(params)
    return ScaleByNewtonState(jnp.zeros((), jnp.int32), jnp.zeros((), x.dtype))

  def update_fn(updates: optax.Updates, state: ScaleByNewtonState, params: optax.Params = None,
                *, value_fn: Callable[..., jax.Array], **extra_args: Any
                ) -> tuple[optax.Updates, ScaleByNewtonState]:
    del extra_args
    if params is None:
      raise ValueError('params=None: Newton needs the current parameters.')
    x, unravel_x = ravel_pytree(params)
    g, unravel = ravel_pytree(updates)
    f = lambda z: value_fn(unravel_x(z))  # noqa: E731
    h = derivatives.hessian(f, x, axis_name).astype(x.dtype)
    h = 0.5 * (h + h.T)
    direction, tau = damped_cholesky_solve(h, -g.astype(x.dtype), damping)
    return unravel(direction), ScaleByNewtonState(optax.safe_increment(state.count), tau)

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def newton(linesearch: Any = 'backtracking', learning_rate: Any = None,
           damping: float = 1e-3, axis_name: str | None = None
           ) -> optax.GradientTransformationExtraArgs:
  """Damped Newton with a line search (Armijo backtracking from α₀ = 1).

  Args:
    linesearch: 'backtracking', 'zoom', 'exact', a transform, or None for a
      fixed `learning_rate` (1.0 gives pure Newton).
    learning_rate: step when `linesearch` is None.
    damping: β of the Hessian shift.
    axis_name: pmap axis over which `value_fn` averages (`lax.pmean`), e.g. the
      trainer's 'batch' in full-batch mode; derivatives of value_fn are
      averaged over it so every device takes the same step.

  Returns:
    An `optax.GradientTransformationExtraArgs` (update takes `value=`,
    `grad=`, `value_fn=`).
  """
  return ls.with_step(scale_by_newton(damping, axis_name), linesearch, learning_rate,
                      initial_step='unit', axis_name=axis_name)
