"""Gradient clipping by global norm (Pascanu, Mikolov & Bengio 2013).

    ‖g‖ = √(Σ_leaves Σ g²);   g ← g · min(1, c/‖g‖)

Chain it before an optimizer: `optax.chain(optim.clip_by_global_norm(1.0), optim.adam(1e-3))`.
"""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax

from optim import checks


def global_norm(tree: Any) -> jax.Array:
  """√(sum of squares of every entry of every leaf), accumulated in ≥ float32."""
  leaves = jax.tree.leaves(tree)
  if not leaves:
    return jnp.zeros([], jnp.float32)
  sq = [jnp.sum(jnp.square(x.astype(jnp.promote_types(x.dtype, jnp.float32))))
        for x in leaves]
  return jnp.sqrt(sum(sq))


def clip_by_global_norm(max_norm: float) -> optax.GradientTransformation:
  """Scales all updates by min(1, max_norm/‖g‖) so the global norm is ≤ max_norm.

  Args:
    max_norm: c > 0.

  Returns:
    A stateless `optax.GradientTransformation`; updates keep their dtype.
  """
  max_norm = checks.positive('max_norm', max_norm)

  def init_fn(params):
    del params
    return optax.EmptyState()

  def update_fn(updates, state, params=None):
    del params
    norm = global_norm(updates)
    # Where the norm is below the threshold the scale is exactly 1.
    scale = jnp.where(norm < max_norm, 1.0, max_norm / jnp.maximum(norm, max_norm))
    updates = jax.tree.map(lambda g: g * scale.astype(g.dtype), updates)
    return updates, state

  return optax.GradientTransformation(init_fn, update_fn)
