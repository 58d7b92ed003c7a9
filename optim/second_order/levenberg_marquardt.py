"""Levenberg and Levenberg-Marquardt: damped Gauss-Newton with adaptive damping.

Each update solves

    (JᵀJ + μD) δ = −Jᵀr,   D = I (Levenberg, 1944) or D = diag(JᵀJ) (Marquardt, 1963)

so large μ gives a short gradient-descent step −Jᵀr/μ and small μ the
Gauss-Newton step. The trial x + δ is judged by the gain ratio of actual to
predicted decrease of the cost F = ½‖r‖²,

    ρ = (F(x) − F(x+δ)) / (L(0) − L(δ)),  L(0) − L(δ) = ½δᵀ(μDδ − Jᵀr),

and μ follows Nielsen's rule (H. B. Nielsen, 1999; Madsen, Nielsen &
Tingleff, Methods for Non-Linear Least Squares Problems, 2004, Algorithm
3.16): if ρ > 0 the step is taken and μ ← μ·max(1/3, 1 − (2ρ − 1)³), ν ← 2;
otherwise the step is rejected (update 0) and μ ← μν, ν ← 2ν. So μ falls
while the quadratic model is trusted and rises fast when it is not, as a
trust-region method would. Initial μ₀ = τ·max(diag(JᵀJ)) for D = I (with
the matrix-free solver, τ·𝟙ᵀJᵀJ𝟙/n, a one-probe estimate of its mean), and
μ₀ = τ for Marquardt's scale-invariant D.
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree
import optax

from optim.second_order.gauss_newton import check_solver
from optim.second_order.gauss_newton import flat_residual_fn
from optim.second_order.gauss_newton import normal_equations
from optim.second_order.gauss_newton import solve_normal_equations

SCALINGS = ('marquardt', 'levenberg')


class LevenbergMarquardtState(NamedTuple):
  """State of `levenberg_marquardt`.

  Attributes:
    count: number of updates, accepted or not (int32).
    damping: μ for the next update.
    nu: ν, the growth factor after a rejection.
    value: cost ½‖r‖² at the params after the update (unchanged if rejected).
    start_value: cost at the params the update started from.
    grad_norm: ‖Jᵀr‖_∞ at the params the update started from.
    gain_ratio: ρ of the last trial step.
    step_norm: ‖δ‖₂ of the last trial step.
    accepted: whether the last trial step was taken.
  """
  count: jax.Array
  damping: jax.Array
  nu: jax.Array
  value: jax.Array
  start_value: jax.Array
  grad_norm: jax.Array
  gain_ratio: jax.Array
  step_norm: jax.Array
  accepted: jax.Array


def levenberg_marquardt(tau: float = 1e-3, scaling: str = 'marquardt', solver: str = 'cholesky',
                        max_cg_iters: int = 100) -> optax.GradientTransformationExtraArgs:
  """Levenberg-Marquardt steps with Nielsen's damping update.

  Args:
    tau: τ of the initial damping μ₀ (see the module docstring).
    scaling: 'marquardt' (D = diag(JᵀJ)) or 'levenberg' (D = I).
    solver: 'cholesky' (dense J) or 'cg' (matrix-free; only with
      scaling='levenberg', since diag(JᵀJ) would need n products).
    max_cg_iters: CG iterations per step for solver='cg'.

  Returns:
    A transform whose update takes `residual_fn=` (params ↦ residuals) and
    returns δ when the step is accepted, zeros when it is rejected.
  """
  if not tau > 0:
    raise ValueError(f'tau={tau!r} must be > 0.')
  if scaling not in SCALINGS:
    raise ValueError(f'scaling={scaling!r} is not one of {SCALINGS}.')
  check_solver(solver, max_cg_iters)
  if solver == 'cg' and scaling == 'marquardt':
    raise ValueError("solver='cg' needs scaling='levenberg' (D = diag(JᵀJ) is not matrix-free).")

  def init_fn(params: optax.Params) -> LevenbergMarquardtState:
    x, _ = ravel_pytree(params)
    dt = x.dtype
    inf = jnp.asarray(jnp.inf, dt)
    zero = jnp.zeros((), dt)
    return LevenbergMarquardtState(jnp.zeros((), jnp.int32), zero, jnp.asarray(2.0, dt), inf,
                                   inf, inf, zero, zero, jnp.zeros((), bool))

  def update_fn(updates: optax.Updates, state: LevenbergMarquardtState,
                params: optax.Params = None, *, residual_fn: Callable[..., jax.Array],
                **extra_args: Any) -> tuple[optax.Updates, LevenbergMarquardtState]:
    del updates, extra_args
    if params is None:
      raise ValueError('params=None: Levenberg-Marquardt needs the current parameters.')
    x, unravel = ravel_pytree(params)
    dt = x.dtype
    r_fn = flat_residual_fn(residual_fn, unravel, dt)
    eqs = normal_equations(r_fn, x, solver)
    if scaling == 'marquardt':
      diag = jnp.diagonal(eqs.jtj)
      # Zero columns of J would make D singular; floor them relative to the largest.
      diag = jnp.maximum(diag, jnp.finfo(dt).eps * jnp.max(diag))
      mu0 = jnp.asarray(tau, dt)
    else:
      diag = jnp.ones_like(x)
      if solver == 'cholesky':
        mu0 = tau * jnp.max(jnp.diagonal(eqs.jtj))
      else:  # one-probe estimate of mean(diag(JᵀJ)): 𝟙ᵀJᵀJ𝟙 / n
        ones = jnp.ones_like(x)
        mu0 = tau * jnp.vdot(ones, eqs.jtj_matvec(ones)) / x.shape[0]
    mu = jnp.where(state.count == 0, mu0, state.damping).astype(dt)
    delta = solve_normal_equations(eqs, mu, diag, solver, max_cg_iters)
    r_new = r_fn(x + delta)
    new_cost = 0.5 * jnp.vdot(r_new, r_new)
    predicted = 0.5 * jnp.vdot(delta, mu * diag * delta - eqs.grad)
    rho = (eqs.cost - new_cost) / predicted
    accept = (rho > 0) & jnp.isfinite(new_cost) & (predicted > 0)
    nu = state.nu
    new_mu = jnp.where(accept, mu * jnp.maximum(1.0 / 3.0, 1.0 - (2.0 * rho - 1.0) ** 3), mu * nu)
    new_nu = jnp.where(accept, 2.0, 2.0 * nu).astype(dt)
    new_state = LevenbergMarquardtState(
        count=optax.safe_increment(state.count), damping=new_mu.astype(dt), nu=new_nu,
        value=jnp.where(accept, new_cost, eqs.cost), start_value=eqs.cost,
        grad_norm=jnp.max(jnp.abs(eqs.grad)), gain_ratio=rho,
        step_norm=jnp.linalg.norm(delta), accepted=accept)
    return unravel(jnp.where(accept, delta, 0.0)), new_state

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def levenberg(tau: float = 1e-3, solver: str = 'cholesky', max_cg_iters: int = 100
              ) -> optax.GradientTransformationExtraArgs:
  """Levenberg's method: `levenberg_marquardt` with D = I."""
  return levenberg_marquardt(tau, 'levenberg', solver, max_cg_iters)
