r"""Minibatch gradient noise: variance ∝ 1/B, and SGD paths against batch GD (deck 004).

    python -m experiments.course --only=minibatch_noise --out=/tmp/course
    # -> minibatch_noise.png

Least squares on N = 512 synthetic points, L(w) = (1/2N) Σᵢ (xᵢᵀw − yᵢ)²,
w ∈ R², x ~ N(0, diag(1, 1/4)), y = xᵀw_true + 0.5·ε. The gradient is an
average of per-example gradients gᵢ = xᵢ(xᵢᵀw − yᵢ); a minibatch B drawn
uniformly with replacement estimates it without bias and with

    E‖g_B − ∇L‖² = tr Σ / B,     Σ = Cov(gᵢ),

so the variance falls as 1/B (a slope of −1 on log-log axes). The same noise
drives the paths: from w₀ = (−2, 3), batch GD (every step uses all N),
per-example SGD (B = 1) and minibatch SGD (B = 32) at the same constant rate
α = 0.05, and per-example SGD with a slowly decaying rate αₜ = α/(1 + t/τ),
τ = N. The constant-rate paths end in a noise ball around the minimiser w*
whose radius grows as B shrinks; the decaying rate shrinks the ball and the
per-example path approaches batch GD's limit w*.

Claims: the fitted log-log slope of variance against B is −1 ± 0.1; B·var
is constant (max/min < 1.5); over the last epoch the mean distance to w* is
smaller for B = 32 than for B = 1 (equal numbers of steps), and smaller
again for the decaying rate (< ½ of the constant-rate B = 1 distance).
"""
from __future__ import annotations

import functools
import os

import jax
import jax.numpy as jnp
import numpy as np

from experiments.course import figure
from experiments.course.claim import Claim, between, less

N = 512
ALPHA = 0.05
START = (-2.0, 3.0)
TAU = N  # decay time of αₜ, in steps
BATCHES = (1, 2, 4, 8, 16, 32, 64, 128, 256)


def data(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(N, 2)) * np.array([1.0, 0.5])
  y = x @ np.array([1.0, -1.0]) + 0.5 * rng.normal(size=N)
  return x.astype(np.float32), y.astype(np.float32)


def loss(w: jax.Array, x: jax.Array, y: jax.Array) -> jax.Array:
  return 0.5 * jnp.mean((x @ w - y) ** 2)


def gradient_variance(x: np.ndarray, y: np.ndarray, w: np.ndarray, batch: int,
                      draws: int, seed: int = 0) -> float:
  """Monte-Carlo E‖g_B − ∇L‖² over `draws` minibatches of size `batch`, with
  the per-example gradients gᵢ = xᵢ(xᵢᵀw − yᵢ) of `loss`."""
  per_example = x * (x @ w - y)[:, None]
  full = per_example.mean(0)
  idx = np.random.default_rng(seed).integers(0, N, (draws, batch))
  est = per_example[idx].mean(1)
  return float(np.mean(np.sum((est - full) ** 2, -1)))


@functools.partial(jax.jit, static_argnames=('batch', 'steps', 'decay'))
def sgd_path(x: jax.Array, y: jax.Array, batch: int, steps: int, decay: bool,
             key: jax.Array) -> jax.Array:
  """Iterates [steps + 1, 2] of SGD on minibatches of `batch` (batch = N: GD)."""
  def step(w, inputs):
    t, k = inputs
    idx = jax.random.randint(k, (batch,), 0, N) if batch < N else jnp.arange(N)
    lr = ALPHA / (1.0 + t / TAU) if decay else ALPHA
    w = w - lr * jax.grad(loss)(w, x[idx], y[idx])
    return w, w
  w0 = jnp.asarray(START, jnp.float32)
  ts = jnp.arange(steps, dtype=jnp.float32)
  _, path = jax.lax.scan(step, w0, (ts, jax.random.split(key, steps)))
  return jnp.concatenate([w0[None], path])


RUNS = {'batch GD': (N, False), 'SGD B=1': (1, False), 'SGD B=32': (32, False),
        'SGD B=1, αₜ = α/(1+t/N)': (1, True)}


def run(out: str, quick: bool = False) -> dict[str, Claim]:
  x, y = data()
  w_star = np.linalg.lstsq(x, y, rcond=None)[0]
  w_probe = np.asarray(START, np.float32)
  draws = 5000 if quick else 50000
  var = np.array([gradient_variance(x, y, w_probe, b, draws) for b in BATCHES])
  slope = float(np.polyfit(np.log(BATCHES), np.log(var), 1)[0])
  scaled = var * np.asarray(BATCHES)
  g = x * (x @ w_probe - y)[:, None]
  trace = float(np.sum(np.var(g, 0)))  # tr Σ of the per-example gradients
  epochs = 20 if quick else 60
  key = jax.random.PRNGKey(1)
  paths = {}
  for label, (b, decay) in RUNS.items():
    steps = epochs * N  # equal steps: the noise ball's radius, not the examples seen
    paths[label] = np.asarray(sgd_path(jnp.asarray(x), jnp.asarray(y), b, steps, decay, key))
  last = {label: float(np.linalg.norm(p[-N:] - w_star, axis=1).mean())
          for label, p in paths.items()}
  plot(var, trace, paths, w_star, x, y, os.path.join(out, 'minibatch_noise.png'))
  c1, c32, cd = last['SGD B=1'], last['SGD B=32'], last['SGD B=1, αₜ = α/(1+t/N)']
  return {
      'log-log slope of gradient variance vs B': between(slope, -1.1, -0.9),
      'B·variance max/min over B': less(float(scaled.max() / scaled.min()), 1.5),
      'B=1 variance / tr Σ': between(float(var[0] / trace), 0.9, 1.1),
      'last-N-steps distance to w*, B=32 / B=1 (constant α)': less(c32 / c1, 1.0),
      'last-N-steps distance to w*, decaying α / constant α (B=1)': less(cd / c1, 0.5),
  }


def plot(var: np.ndarray, trace: float, paths: dict[str, np.ndarray], w_star: np.ndarray,
         x: np.ndarray,
         y: np.ndarray, path: str) -> None:
  fig, axes = figure.new(2)
  ax = axes[0][0]
  b = np.asarray(BATCHES, float)
  ax.loglog(b, var, 'o-', label='measured E‖g_B − ∇L‖²')
  ax.loglog(b, trace / b, 'k--', lw=0.8, label='tr Σ / B (exact)')
  ax.set_xlabel('batch size B (examples)')
  ax.set_ylabel('gradient-estimate variance')
  ax.set_title(f'minibatch gradient noise at w = {START}')
  ax.grid(alpha=0.3, which='both')
  ax.legend()
  ax = axes[0][1]
  g1, g2 = np.meshgrid(np.linspace(-2.5, 2.0, 120), np.linspace(-1.8, 3.3, 120))
  ws = np.stack([g1.ravel(), g2.ravel()], 1)
  z = 0.5 * np.mean((ws @ x.T - y) ** 2, 1).reshape(g1.shape)
  ax.contour(g1, g2, z, levels=20, cmap='Greys', linewidths=0.6)
  for label, p in paths.items():
    stride = max(1, len(p) // 400)
    ax.plot(p[::stride, 0], p[::stride, 1], lw=0.8, label=label)
  ax.plot(*w_star, 'r*', ms=10, label='w* (least squares)')
  ax.set_xlabel('w₁')
  ax.set_ylabel('w₂')
  ax.set_title(f'paths from {START}, α = {ALPHA}')
  ax.legend(fontsize=7)
  figure.save(fig, path)
