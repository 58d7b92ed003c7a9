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


# Leaves of at most this many entries are reduced together, over their concatenation:
# on CPU every reduction is a separately dispatched kernel, and a model's many biases
# and scales would cost more in dispatch than in arithmetic; a larger leaf is reduced
# in place, since copying it into a concatenation would cost more than that.
_CONCAT_MAX_SIZE = 1 << 16


def global_norm(tree: Any) -> jax.Array:
  """‖g‖ = √(Σ_leaves Σ g²), accumulated in ≥ float32.

  Large leaves are reduced one by one; the small ones (biases, norms'
  scales) together, as one vector: the same sum in another order.
  """
  leaves = [x.astype(jnp.promote_types(x.dtype, jnp.float32)) for x in jax.tree.leaves(tree)]
  if not leaves:
    return jnp.zeros([], jnp.float32)
  small = [jnp.ravel(x) for x in leaves if x.size <= _CONCAT_MAX_SIZE]
  sq = [jnp.sum(jnp.square(x)) for x in leaves if x.size > _CONCAT_MAX_SIZE]
  if small:  # jnp.concatenate promotes mixed float32/float64 leaves itself
    sq.append(jnp.sum(jnp.square(jnp.concatenate(small))))
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
