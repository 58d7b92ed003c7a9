"""2-D toy classification sets and a full-batch fit, for the course's small-net experiments.

    x, y = toy.spiral(100, 3)                 # CS231n's 3-arm spiral, x ∈ R^{300×2}
    params = toy.fit(model, x, y, steps=2000)  # Adam on softmax cross-entropy (+ λ‖W‖²)

Points enter the baselines as 1×2 single-channel images (`toy.as_images`).
"""
from __future__ import annotations

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax


def spiral(per_class: int, classes: int = 3, noise: float = 0.2,
           seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
  """CS231n's spiral: class k's points at radius r ∈ [0, 1], angle 4(k + r) + noise."""
  rng = np.random.default_rng(seed)
  xs, ys = [], []
  for k in range(classes):
    r = np.linspace(0.0, 1.0, per_class)
    t = np.linspace(4.0 * k, 4.0 * (k + 1), per_class) + noise * rng.normal(size=per_class)
    xs.append(np.stack([r * np.sin(t), r * np.cos(t)], 1))
    ys.append(np.full(per_class, k))
  return np.concatenate(xs).astype(np.float32), np.concatenate(ys).astype(np.int32)


def xor(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
  """Uniform points in [−1, 1]², label 1 where x₁x₂ > 0: not linearly separable."""
  x = np.random.default_rng(seed).uniform(-1, 1, size=(n, 2)).astype(np.float32)
  return x, (x[:, 0] * x[:, 1] > 0).astype(np.int32)


def as_images(x: np.ndarray) -> jax.Array:
  """[N, 2] points → [N, 1, 2, 1] images (img_size=(1, 2), in_chans=1)."""
  return jnp.asarray(x).reshape(-1, 1, 2, 1)


def l2_penalty(params: Any) -> jax.Array:
  """Σ W² over the kernels (biases are not penalised)."""
  leaves = jax.tree_util.tree_flatten_with_path(params)[0]
  return sum(jnp.sum(v ** 2) for path, v in leaves if 'kernel' in str(path[-1]))


@functools.partial(jax.jit, static_argnames=('model', 'steps'))
def _fit(model: nn.Module, params: Any, x: jax.Array, y: jax.Array, steps: int, lr: float,
         l2: float) -> tuple[Any, jax.Array]:
  tx = optax.adam(lr)

  def loss_fn(p):
    logits = model.apply({'params': p}, x)
    xent = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
    return xent + l2 * l2_penalty(p)

  def step(carry, _):
    p, state = carry
    value, grad = jax.value_and_grad(loss_fn)(p)
    updates, state = tx.update(grad, state, p)
    return (optax.apply_updates(p, updates), state), value

  (params, _), losses = jax.lax.scan(step, (params, tx.init(params)), None, length=steps)
  return params, losses


def fit(model: nn.Module, x: np.ndarray, y: np.ndarray, steps: int, lr: float = 1e-2,
        l2: float = 0.0, seed: int = 0) -> tuple[Any, np.ndarray]:
  """Full-batch Adam on mean softmax cross-entropy + l2·Σ W²: (params, losses)."""
  images = as_images(x)
  params = model.init(jax.random.PRNGKey(seed), images[:1])['params']
  params, losses = _fit(model, params, images, jnp.asarray(y), steps, lr, l2)
  return params, np.asarray(losses)


def accuracy(model: nn.Module, params: Any, x: np.ndarray, y: np.ndarray) -> float:
  logits = model.apply({'params': params}, as_images(x))
  return float(np.mean(np.asarray(jnp.argmax(logits, -1)) == y))


def grid_predictions(model: nn.Module, params: Any, lim: float = 1.1,
                     n: int = 150) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """(g1, g2, class) on an n×n grid over [−lim, lim]², for decision-region plots."""
  g1, g2 = np.meshgrid(np.linspace(-lim, lim, n), np.linspace(-lim, lim, n))
  pts = np.stack([g1.ravel(), g2.ravel()], 1).astype(np.float32)
  pred = np.asarray(jnp.argmax(model.apply({'params': params}, as_images(pts)), -1))
  return g1, g2, pred.reshape(g1.shape)
