"""Per-example classification losses: softmax cross-entropy, multiclass hinge, L2.

Each loss maps logits `s: [..., K]` and integer labels `y: [...]` to one loss
per example `[...]`; the trainer takes the (masked) mean and adds the
regularization penalty λR(W) from `optim.regularizers`.

- `softmax_xent`: L = -Σ_k t_k log softmax(s)_k with label-smoothed targets
  t = (1 - ε)·onehot(y) + ε/K (Szegedy et al. 2016, "Rethinking the Inception
  Architecture", §7).
- `hinge`: the multiclass SVM loss of Weston & Watkins (1999), as in CS231n:
  L = Σ_{j≠y} max(0, s_j - s_y + Δ), Δ = 1.
- `l2`: squared error against the (smoothed) one-hot target,
  L = ½ Σ_k (s_k - t_k)², so ∂L/∂s = s - t.
"""
from __future__ import annotations

from typing import Callable

import chex
import jax
import jax.numpy as jnp

LOSSES = ('softmax_xent', 'hinge', 'l2')


def smoothed_targets(labels: jax.Array, num_classes: int, label_smoothing: float) -> jax.Array:
  """t = (1 - ε)·onehot(y) + ε/K, float32 `[..., K]`."""
  onehot = jax.nn.one_hot(labels, num_classes, dtype=jnp.float32)
  return onehot * (1.0 - label_smoothing) + label_smoothing / num_classes


def softmax_xent(logits: jax.Array, labels: jax.Array, label_smoothing: float = 0.0) -> jax.Array:
  """Cross-entropy -Σ_k t_k log softmax(s)_k per example (float32)."""
  chex.assert_equal_shape_prefix((logits, labels), labels.ndim)
  logits = logits.astype(jnp.float32)
  targets = smoothed_targets(labels, logits.shape[-1], label_smoothing)
  return -jnp.sum(targets * jax.nn.log_softmax(logits, axis=-1), axis=-1)


def hinge(logits: jax.Array, labels: jax.Array, label_smoothing: float = 0.0,
          margin: float = 1.0) -> jax.Array:
  """Weston-Watkins multiclass SVM loss Σ_{j≠y} max(0, s_j - s_y + Δ) per example."""
  if label_smoothing:
    raise ValueError(f'label_smoothing={label_smoothing!r} has no meaning for the hinge loss; '
                     'use 0.0')
  chex.assert_equal_shape_prefix((logits, labels), labels.ndim)
  logits = logits.astype(jnp.float32)
  onehot = jax.nn.one_hot(labels, logits.shape[-1], dtype=jnp.float32)
  correct = jnp.sum(logits * onehot, axis=-1, keepdims=True)
  margins = jnp.maximum(0.0, logits - correct + margin) * (1.0 - onehot)
  return jnp.sum(margins, axis=-1)


def l2(logits: jax.Array, labels: jax.Array, label_smoothing: float = 0.0) -> jax.Array:
  """½ Σ_k (s_k - t_k)² per example against the (smoothed) one-hot target."""
  chex.assert_equal_shape_prefix((logits, labels), labels.ndim)
  logits = logits.astype(jnp.float32)
  targets = smoothed_targets(labels, logits.shape[-1], label_smoothing)
  return 0.5 * jnp.sum(jnp.square(logits - targets), axis=-1)


def get(name: str) -> Callable[..., jax.Array]:
  """The per-example loss called `name` (one of LOSSES)."""
  fns = {'softmax_xent': softmax_xent, 'hinge': hinge, 'l2': l2}
  if name not in fns:
    raise ValueError(f'loss={name!r} is not a known loss; valid: {", ".join(LOSSES)}')
  return fns[name]
