"""Per-example classification losses: softmax and sigmoid cross-entropy, KL, hinge, L2, logistic.

Each K-class loss maps logits `s: [..., K]` and targets to one loss per
example `[...]`; the trainer takes the (masked) mean and adds the
regularization penalty λR(W) from `optim.regularizers`. Targets are either
integer labels `y: [...]`, turned into label-smoothed one-hots
t = (1 - ε)·onehot(y) + ε/K (Szegedy et al. 2016, "Rethinking the Inception
Architecture", §7), or soft targets `t: [..., K]` (rows summing to 1, e.g.
Mixup/CutMix's mixed targets from `experiments.mixing`, which already fold
the smoothing in; ε must then be 0).

- `softmax_xent`: L = -Σ_k t_k log softmax(s)_k (torch's `cross_entropy`
  with class probabilities as target).
- `sigmoid_xent`: one-vs-rest binary cross-entropy summed over classes,
  L = -Σ_k [t_k log σ(s_k) + (1 - t_k) log σ(-s_k)] (big_vision's
  `sigmoid_xent`; DeiT III's BCE, Touvron et al. 2022, §3, whose torch
  `binary_cross_entropy_with_logits` averages over classes too: that is L / K).
- `kl`: KL(t ‖ softmax(s)) = Σ_k t_k (log t_k - log softmax(s)_k), 0 log 0 = 0
  (torch's `kl_div(log_softmax(s), t, log_target=False)` summed over classes);
  it differs from `softmax_xent` by the targets' entropy H(t), a constant, so
  the gradients agree and only the reported value changes.
- `hinge`: the multiclass SVM loss of Weston & Watkins (1999), as in CS231n:
  L = Σ_{j≠y} max(0, s_j - s_y + Δ), Δ = 1 (hard labels only).
- `l2`: squared error against the target, L = ½ Σ_k (s_k - t_k)², so ∂L/∂s = s - t.

`logistic` is the binary logistic-regression loss on one score per example,
L = log(1 + exp(-s)) if y = 1 else log(1 + exp(s)), = softplus(s) - y·s
(torch's `binary_cross_entropy_with_logits`). It takes scores `[...]`, not
K logits, so it is not in `LOSSES` (the K-class registry the classification
task draws from).
"""
from __future__ import annotations

from typing import Callable

import chex
import jax
import jax.numpy as jnp

LOSSES = ('softmax_xent', 'sigmoid_xent', 'kl', 'hinge', 'l2')


def smoothed_targets(labels: jax.Array, num_classes: int, label_smoothing: float) -> jax.Array:
  """t = (1 - ε)·onehot(y) + ε/K, float32 `[..., K]`."""
  onehot = jax.nn.one_hot(labels, num_classes, dtype=jnp.float32)
  return onehot * (1.0 - label_smoothing) + label_smoothing / num_classes


def targets_of(logits: jax.Array, labels: jax.Array, label_smoothing: float = 0.0) -> jax.Array:
  """Float32 targets `[..., K]`: soft targets as given, integer labels one-hot and smoothed.

  Soft targets are recognised by their shape (the logits' shape) and must
  come with ε = 0: mixed targets carry their own smoothing.
  """
  if labels.ndim == logits.ndim:
    chex.assert_equal_shape((logits, labels))
    if label_smoothing:
      raise ValueError(f'label_smoothing={label_smoothing!r} with soft targets; fold the '
                       'smoothing into the targets (experiments.mixing does) and pass 0.0')
    return labels.astype(jnp.float32)
  chex.assert_equal_shape_prefix((logits, labels), labels.ndim)
  return smoothed_targets(labels, logits.shape[-1], label_smoothing)


def softmax_xent(logits: jax.Array, labels: jax.Array, label_smoothing: float = 0.0) -> jax.Array:
  """Cross-entropy -Σ_k t_k log softmax(s)_k per example (float32)."""
  targets = targets_of(logits, labels, label_smoothing)
  return -jnp.sum(targets * jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1), axis=-1)


def sigmoid_xent(logits: jax.Array, labels: jax.Array, label_smoothing: float = 0.0
                 ) -> jax.Array:
  """-Σ_k [t_k log σ(s_k) + (1 - t_k) log σ(-s_k)] per example (float32)."""
  targets = targets_of(logits, labels, label_smoothing)
  s = logits.astype(jnp.float32)
  return -jnp.sum(targets * jax.nn.log_sigmoid(s) + (1.0 - targets) * jax.nn.log_sigmoid(-s),
                  axis=-1)


def kl(logits: jax.Array, labels: jax.Array, label_smoothing: float = 0.0) -> jax.Array:
  """KL(t ‖ softmax(s)) = Σ_k t_k (log t_k - log softmax(s)_k) per example, 0 log 0 = 0."""
  targets = targets_of(logits, labels, label_smoothing)
  log_p = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
  safe = jnp.where(targets > 0, targets, 1.0)
  return jnp.sum(jnp.where(targets > 0, targets * (jnp.log(safe) - log_p), 0.0), axis=-1)


def hinge(logits: jax.Array, labels: jax.Array, label_smoothing: float = 0.0,
          margin: float = 1.0) -> jax.Array:
  """Weston-Watkins multiclass SVM loss Σ_{j≠y} max(0, s_j - s_y + Δ) per example."""
  if label_smoothing:
    raise ValueError(f'label_smoothing={label_smoothing!r} has no meaning for the hinge loss; '
                     'use 0.0')
  if labels.ndim == logits.ndim:
    raise ValueError('the hinge loss takes integer labels, not soft targets (Mixup/CutMix '
                     'need a probabilistic loss such as softmax_xent)')
  chex.assert_equal_shape_prefix((logits, labels), labels.ndim)
  logits = logits.astype(jnp.float32)
  onehot = jax.nn.one_hot(labels, logits.shape[-1], dtype=jnp.float32)
  correct = jnp.sum(logits * onehot, axis=-1, keepdims=True)
  margins = jnp.maximum(0.0, logits - correct + margin) * (1.0 - onehot)
  return jnp.sum(margins, axis=-1)


def l2(logits: jax.Array, labels: jax.Array, label_smoothing: float = 0.0) -> jax.Array:
  """½ Σ_k (s_k - t_k)² per example against the target."""
  targets = targets_of(logits, labels, label_smoothing)
  return 0.5 * jnp.sum(jnp.square(logits.astype(jnp.float32) - targets), axis=-1)


def logistic(scores: jax.Array, labels: jax.Array, label_smoothing: float = 0.0) -> jax.Array:
  """Binary logistic loss softplus(s) - t·s per example, t = y(1 - ε) + ε/2, y ∈ {0, 1}.

  `labels` may also be probabilities t ∈ [0, 1] (float); shapes match `scores`.
  """
  chex.assert_equal_shape((scores, labels))
  s = scores.astype(jnp.float32)
  t = labels.astype(jnp.float32) * (1.0 - label_smoothing) + 0.5 * label_smoothing
  return jax.nn.softplus(s) - t * s


def get(name: str) -> Callable[..., jax.Array]:
  """The per-example K-class loss called `name` (one of LOSSES)."""
  fns = {'softmax_xent': softmax_xent, 'sigmoid_xent': sigmoid_xent, 'kl': kl, 'hinge': hinge,
         'l2': l2}
  if name not in fns:
    raise ValueError(f'loss={name!r} is not a known loss; valid: {", ".join(LOSSES)}')
  return fns[name]
