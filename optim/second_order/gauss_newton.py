"""Gauss-Newton for least squares min ½‖r(x)‖², and the normal-equation pieces.

Linearising r(x + δ) ≈ r + Jδ gives the model ½‖r + Jδ‖², whose minimiser
solves the normal equations

    JᵀJ δ = −Jᵀr                                           (N&W eq. 10.23)

i.e. Newton with the Hessian approximated by JᵀJ (the second-order term
Σ rᵢ∇²rᵢ dropped). Two solvers: 'cholesky' materialises J (`jax.jacfwd`
when m ≥ n, else `jax.jacrev`) and factors JᵀJ (with a tiny shift if it is
singular); 'cg' never forms J and runs conjugate gradient on
v ↦ Jᵀ(Jv) with one `jax.linearize` (jvp) and its transpose (vjp).

Transforms here take `residual_fn=` (params ↦ residual vector) as the
keyword extra argument instead of `value_fn`; the incoming `updates` are
ignored (the gradient Jᵀr is computed from the residuals).
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

import chex
import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree
import optax

from optim.second_order import cg
from optim.second_order.newton import damped_cholesky_solve

SOLVERS = ('cholesky', 'cg')


class NormalEquations(NamedTuple):
  """The Gauss-Newton model at x: residuals, gradient Jᵀr and JᵀJ (or its matvec)."""
  residual: jax.Array
  grad: jax.Array
  jtj: jax.Array | None
  jtj_matvec: Callable[[jax.Array], jax.Array]

  @property
  def cost(self) -> jax.Array:
    return 0.5 * jnp.vdot(self.residual, self.residual)


def flat_residual_fn(residual_fn: Callable[..., jax.Array], unravel: Callable[[jax.Array], Any],
                     dtype: Any) -> Callable[[jax.Array], jax.Array]:
  """flat x ↦ residuals as a 1-D vector of `dtype`."""
  return lambda z: jnp.ravel(residual_fn(unravel(z))).astype(dtype)


def normal_equations(r_fn: Callable[[jax.Array], jax.Array], x: jax.Array,
                     solver: str) -> NormalEquations:
  """Residuals, Jᵀr and JᵀJ at x ('cholesky': dense; 'cg': matrix-free)."""
  chex.assert_rank(x, 1)
  if solver == 'cholesky':
    r = r_fn(x)
    m, n = r.shape[0], x.shape[0]
    jac = (jax.jacfwd if m >= n else jax.jacrev)(r_fn)(x)
    jtj = jac.T @ jac
    return NormalEquations(r, jac.T @ r, jtj, lambda v: jtj @ v)
  r, jvp = jax.linearize(r_fn, x)
  vjp = jax.linear_transpose(jvp, x)
  jt = lambda u: vjp(u)[0]  # noqa: E731
  return NormalEquations(r, jt(r), None, lambda v: jt(jvp(v)))


def solve_normal_equations(eqs: NormalEquations, shift: jax.Array, diag: jax.Array,
                           solver: str, max_cg_iters: int) -> jax.Array:
  """δ solving (JᵀJ + shift·diag(diag)) δ = −Jᵀr."""
  if solver == 'cholesky':
    return damped_cholesky_solve(eqs.jtj + shift * jnp.diag(diag), -eqs.grad, 1e-12)[0]
  gnorm = jnp.linalg.norm(eqs.grad)
  tol = jnp.finfo(eqs.grad.dtype).eps ** 0.5 * gnorm
  res = cg.conjugate_gradient(lambda v: eqs.jtj_matvec(v) + shift * diag * v, -eqs.grad, tol,
                              max_cg_iters)
  return res.x


def check_solver(solver: str, max_cg_iters: int) -> None:
  if solver not in SOLVERS:
    raise ValueError(f'solver={solver!r} is not one of {SOLVERS}.')
  if int(max_cg_iters) != max_cg_iters or max_cg_iters < 1:
    raise ValueError(f'max_cg_iters={max_cg_iters!r} must be a positive integer.')


class GaussNewtonState(NamedTuple):
  """State of `gauss_newton`.

  Attributes:
    count: number of updates (int32).
    value: cost ½‖r‖² at the params after the update.
    start_value: cost at the params the update started from.
    grad_norm: ‖Jᵀr‖_∞ at the params the update started from.
    accepted: whether the step was applied (False only if it was non-finite).
  """
  count: jax.Array
  value: jax.Array
  start_value: jax.Array
  grad_norm: jax.Array
  accepted: jax.Array


def gauss_newton(solver: str = 'cholesky', max_cg_iters: int = 100
                 ) -> optax.GradientTransformationExtraArgs:
  """Gauss-Newton steps δ = −(JᵀJ)⁻¹Jᵀr (full step, no damping).

  Args:
    solver: 'cholesky' (dense J) or 'cg' (matrix-free).
    max_cg_iters: CG iterations per step for solver='cg'.

  Returns:
    A transform whose update takes `residual_fn=` (params ↦ residuals). A
    step to a non-finite cost is not taken (`accepted` False).
  """
  check_solver(solver, max_cg_iters)

  def init_fn(params: optax.Params) -> GaussNewtonState:
    x, _ = ravel_pytree(params)
    inf = jnp.asarray(jnp.inf, x.dtype)
    return GaussNewtonState(jnp.zeros((), jnp.int32), inf, inf, inf, jnp.zeros((), bool))

  def update_fn(updates: optax.Updates, state: GaussNewtonState, params: optax.Params = None,
                *, residual_fn: Callable[..., jax.Array], **extra_args: Any
                ) -> tuple[optax.Updates, GaussNewtonState]:
    del updates, extra_args
    if params is None:
      raise ValueError('params=None: Gauss-Newton needs the current parameters.')
    x, unravel = ravel_pytree(params)
    r_fn = flat_residual_fn(residual_fn, unravel, x.dtype)
    eqs = normal_equations(r_fn, x, solver)
    delta = solve_normal_equations(eqs, jnp.zeros((), x.dtype), jnp.ones_like(x), solver,
                                   max_cg_iters)
    r_new = r_fn(x + delta)
    new_cost = 0.5 * jnp.vdot(r_new, r_new)
    ok = jnp.isfinite(new_cost) & jnp.all(jnp.isfinite(delta))
    delta = jnp.where(ok, delta, 0.0)
    new_state = GaussNewtonState(optax.safe_increment(state.count),
                                 jnp.where(ok, new_cost, eqs.cost), eqs.cost,
                                 jnp.max(jnp.abs(eqs.grad)), ok)
    return unravel(delta), new_state

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)
