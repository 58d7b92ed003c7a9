r"""Step sizes for stochastic approximation: constant vs 1/t (deck 002, Robbins & Monro 1951).

    python -m experiments.course --only=robbins_monro --out=/tmp/course   # -> robbins_monro.png

Find θ* = E[X] = μ from noisy samples Xₜ ~ N(μ, σ²), μ = 0, σ = 1, by SGD on
f(θ) = ½E(θ − X)², whose stochastic gradient is θ − Xₜ:

    θₜ₊₁ = θₜ − αₜ (θₜ − Xₜ),   θ₀ = 5.

Robbins and Monro's conditions for convergence (in mean square) are

    Σₜ αₜ = ∞   (the steps can travel any distance)   and
    Σₜ αₜ² < ∞  (the injected noise Σ αₜ² σ² stays finite).

* constant α = 0.1 violates the second: the error stalls at the noise floor
  E(θ − μ)² → ασ²/(2 − α) = 0.0526 (the stationary variance of the AR(1)
  recursion θₜ₊₁ − μ = (1 − α)(θₜ − μ) + α εₜ);
* αₜ = 1/t satisfies both: θₜ is the running mean of X₁…Xₜ, so
  E(θₜ − μ)² = σ²/t → 0;
* αₜ = 1/(t+1)² violates the first: Σ αₜ = π²/6 − 1 < ∞, the iterate stops
  short of μ: E θ_∞ = θ₀ ∏ₜ(1 − 1/(t+1)²) = θ₀/2.

The mean squared errors are averaged over 1000 independent runs (vmapped).
"""
from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np

from experiments.course import figure
from experiments.course.claim import Claim, between, greater, less

THETA0 = 5.0
ALPHA = 0.1
SCHEDULES = {
    'constant α = 0.1': lambda t: jnp.full_like(t, ALPHA),
    'αₜ = 1/t': lambda t: 1.0 / t,
    'αₜ = 1/(t+1)²': lambda t: 1.0 / (t + 1) ** 2,
}


def mse_curves(steps: int, runs: int, seed: int = 0) -> dict[str, np.ndarray]:
  """{schedule: E(θₜ − μ)² for t = 1..steps} over `runs` independent runs."""
  noise = jax.random.normal(jax.random.PRNGKey(seed), (steps, runs))
  t = jnp.arange(1, steps + 1, dtype=jnp.float32)
  out = {}
  for label, schedule in SCHEDULES.items():
    alphas = schedule(t)

    def step(theta, inputs):
      a, x = inputs
      theta = theta - a * (theta - x)
      return theta, jnp.mean(theta ** 2)

    _, mse = jax.lax.scan(step, jnp.full((runs,), THETA0), (alphas, noise))
    out[label] = np.asarray(mse)
  return out


def run(out: str, quick: bool = False) -> dict[str, Claim]:
  steps = 2000 if quick else 20000
  mse = mse_curves(steps, 1000)
  floor = ALPHA / (2 - ALPHA)
  tail = slice(steps // 2, None)
  const = float(mse['constant α = 0.1'][tail].mean())
  inv = mse['αₜ = 1/t']
  plot(mse, floor, os.path.join(out, 'robbins_monro.png'))
  t = np.arange(1, steps + 1)
  return {
      'constant α: late MSE / noise floor ασ²/(2−α)': between(const / floor, 0.85, 1.15),
      '1/t: final MSE · t (σ² = 1)': between(float(inv[-1] * steps), 0.8, 1.2),
      '1/t: final MSE / constant-α floor': less(float(inv[-1] / const), 0.05),
      '1/t: Σα over the run / ln T (Σα = ∞)': greater(
          float(np.sum(1 / t) / np.log(steps)), 1.0),
      '1/t: Σα² over the run (< π²/6)': less(float(np.sum(1 / t ** 2)), np.pi ** 2 / 6),
      '1/(t+1)²: final MSE (Σα < ∞ stops short)': greater(
          float(mse['αₜ = 1/(t+1)²'][-1]), 1.0),
  }


def plot(mse: dict[str, np.ndarray], floor: float, path: str) -> None:
  fig, axes = figure.new(1, width=6.5)
  ax = axes[0][0]
  t = np.arange(1, len(next(iter(mse.values()))) + 1)
  for label, curve in mse.items():
    ax.loglog(t, curve, label=label)
  ax.loglog(t, 1.0 / t, 'k:', lw=0.8, label='σ²/t')
  ax.axhline(floor, color='C0', ls='--', lw=0.8, label='noise floor ασ²/(2−α)')
  ax.set_xlabel('step t')
  ax.set_ylabel('E(θₜ − θ*)² over 1000 runs')
  ax.set_title('Robbins–Monro: Σα = ∞ and Σα² < ∞')
  ax.grid(alpha=0.3, which='both')
  ax.legend(fontsize=8)
  figure.save(fig, path)
