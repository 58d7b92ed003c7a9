"""Penalty functions R(W) added to the loss: L2, L1 and elastic net.

The course's definitions, summed over every selected leaf of a params pytree:

    l2:           R(W) = Σ W²             (no ½: its gradient is 2·W)
    l1:           R(W) = Σ |W|
    elastic_net:  R(W) = Σ (β·W² + |W|)

and the loss becomes L + λ·R(W). An optimizer's `weight_decay=λ'` instead adds
λ'·W to the gradient, i.e. it is λ = λ'/2 here.

Which leaves: by default every leaf (the plain math). `mask='weights'`
selects leaves with ndim ≥ 2 (kernels, embeddings), excluding biases and
normalisation scales/offsets, the usual choice for transformers; a callable
`mask(path, leaf) -> bool` selects any subset.
"""
from __future__ import annotations

from typing import Any, Callable, Optional, Union

import jax
import jax.numpy as jnp
import numpy as np

from optim import checks

Mask = Optional[Union[str, Callable[[tuple, jax.Array], bool]]]
KINDS = ('l2', 'l1', 'elastic_net', 'none')
MASKS = (None, 'all', 'weights')


def _selected(params: Any, mask: Mask) -> list[jax.Array]:
  if mask is None or mask == 'all':
    return jax.tree.leaves(params)
  if mask == 'weights':
    return [x for x in jax.tree.leaves(params) if jnp.ndim(x) >= 2]
  if callable(mask):
    return [x for path, x in jax.tree_util.tree_leaves_with_path(params) if mask(path, x)]
  raise ValueError(f"mask must be None, 'all', 'weights' or a callable (path, leaf) -> bool, "
                   f'got {mask!r}')


def _sum(terms: list[jax.Array]) -> jax.Array:
  if not terms:
    return jnp.zeros([], jnp.float32)
  return sum(terms)


def l2(params: Any, mask: Mask = None) -> jax.Array:
  """R(W) = Σ W² over the selected leaves."""
  return _sum([jnp.sum(jnp.square(x)) for x in _selected(params, mask)])


def l1(params: Any, mask: Mask = None) -> jax.Array:
  """R(W) = Σ |W| over the selected leaves."""
  return _sum([jnp.sum(jnp.abs(x)) for x in _selected(params, mask)])


def elastic_net(params: Any, beta: float = 1.0, mask: Mask = None) -> jax.Array:
  """R(W) = Σ (β·W² + |W|) over the selected leaves."""
  beta = checks.non_negative('beta', beta)
  return _sum([jnp.sum(beta * jnp.square(x) + jnp.abs(x)) for x in _selected(params, mask)])


def penalty(kind: str, strength: float, beta: float = 1.0, mask: Mask = None
            ) -> Callable[[Any], jax.Array]:
  """`params -> λ·R(params)` by name, for configs.

  Args:
    kind: 'l2', 'l1', 'elastic_net' or 'none' (always 0).
    strength: λ ≥ 0.
    beta: β of the elastic net (ignored otherwise).
    mask: which leaves (see module docstring).

  Returns:
    A function of the params pytree returning a scalar.
  """
  checks.one_of('kind', kind, KINDS)
  strength = checks.non_negative('strength', strength)
  if not (mask in MASKS or callable(mask)):
    raise ValueError(f"mask must be None, 'all', 'weights' or a callable, got {mask!r}")
  if kind == 'none' or strength == 0:
    return lambda params: jnp.zeros([], jnp.float32)
  if kind == 'elastic_net':
    beta = checks.non_negative('beta', beta)
    return lambda params: strength * elastic_net(params, beta, mask)
  fn = l2 if kind == 'l2' else l1
  return lambda params: strength * fn(params, mask)


def l2_residuals(params: Any, strength: float, mask: Mask = None) -> jax.Array:
  """r = √(2λ)·(selected leaves, raveled), so that ½‖r‖² = λ·l2(params, mask).

  The L2 penalty as residuals, for least-squares methods (Gauss-Newton,
  Levenberg-Marquardt) that minimise ½‖r‖² of the data residuals and these
  stacked together.
  """
  if not strength >= 0:
    raise ValueError(f'strength={strength!r} must be >= 0')
  leaves = _selected(params, mask)
  if not leaves:
    return jnp.zeros((0,), jnp.float32)
  scale = float(np.sqrt(2.0 * strength))
  return jnp.concatenate([jnp.ravel(x) * jnp.asarray(scale, jnp.result_type(x)) for x in leaves])
