"""Optimizer policy by parameter path: learning-rate multipliers, no-decay masks, freezing.

A leaf's path is its keys joined by '/' ('decode_head/linear_c1/kernel');
a pattern p matches it when `re.search(p, path)` does, so a plain name
matches as a substring, as mmseg's `paramwise_cfg.custom_keys` do. When
several patterns match, the longest wins (mmseg's rule). A pattern that
matches no parameter is an error naming the config key it came from.

- `lr_multipliers` / `scale_lr_by_path`: leaf-wise learning-rate factors m,
  applied to the optimizer's final update (−lr·u ↦ −m·lr·u), which is a
  torch parameter group with lr·m for every first-order `optim.create`
  optimizer (their state does not depend on lr).
- `scale_by_multipliers`: the stateless transform behind it, also used for
  layer-wise decay (`optim.layer_decay`), whose factors may be arrays along
  the stacked axis of scanned blocks.
- `no_decay_mask`: the `mask` of AdamW's decoupled decay, False on the matched
  leaves (mmseg's `decay_mult=0`).
- `freeze`: matched leaves get zero updates (`optax.set_to_zero` through
  `optax.multi_transform`), so they stay bit-identical and the wrapped
  optimizer keeps no state for them; `frozen_mask` reports which leaves are
  frozen (the trainer keeps the BatchNorm statistics of frozen modules fixed).
"""
from __future__ import annotations

import re
from typing import Any, Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

FROZEN, TRAINABLE = 'frozen', 'trainable'


def path_name(path: tuple) -> str:
  """'a/b/c' from a `jax.tree_util` key path (dict keys, attributes, indices)."""
  return '/'.join(str(getattr(k, 'key', getattr(k, 'name', getattr(k, 'idx', k))))
                  for k in path)


def leaf_paths(tree: Any) -> list[str]:
  """The '/'-joined path of every leaf of `tree`, in `jax.tree.leaves` order."""
  return [path_name(p) for p, _ in jax.tree_util.tree_flatten_with_path(tree)[0]]


def _check_patterns(patterns: Sequence[str], key: str) -> None:
  for pattern in patterns:
    if not isinstance(pattern, str):
      raise ValueError(f'{key} pattern {pattern!r} must be a string (a regular expression)')
    try:
      re.compile(pattern)
    except re.error as e:
      raise ValueError(f'{key} pattern {pattern!r} is not a regular expression: {e}') from e


def match_by_path(tree: Any, table: Mapping[str, Any], default: Any, key: str,
                  strict: bool = True) -> Any:
  """A pytree like `tree` holding, per leaf, `table[p]` of the longest matching pattern p.

  Unmatched leaves get `default`. With `strict`, a pattern matching no leaf
  raises ValueError listing the top-level names (messages name `key`).
  """
  _check_patterns(list(table), key)
  leaves, treedef = jax.tree_util.tree_flatten_with_path(tree)
  paths = [path_name(p) for p, _ in leaves]
  if strict:
    unused = [p for p in table if not any(re.search(p, s) for s in paths)]
    if unused:
      top = (sorted(tree) if isinstance(tree, Mapping) else
             sorted({s.split('/')[0] for s in paths}))
      raise ValueError(f'{key} pattern(s) {unused} match no parameter; patterns are '
                       f"searched in paths like {paths[0] if paths else ''!r}; top-level "
                       f'parameter names: {", ".join(map(str, top))}')
  longest_first = sorted(table, key=len, reverse=True)
  values = [next((table[p] for p in longest_first if re.search(p, s)), default) for s in paths]
  return jax.tree_util.tree_unflatten(treedef, values)


def lr_multipliers(params: Any, lr_mult: Mapping[str, float],
                   key: str = 'optimizer.lr_mult', strict: bool = True) -> Any:
  """The learning-rate factor of every leaf of `params` (a pytree of Python floats).

  Longest matching pattern wins; unmatched leaves get 1.

  Raises:
    ValueError: a pattern is not a valid regular expression or matches no
      parameter (the message lists the top-level parameter names), or a factor
      is not a number ≥ 0; messages name the config `key` the patterns came from.
  """
  for pattern, m in lr_mult.items():
    if isinstance(m, bool) or not isinstance(m, (int, float)) or not m >= 0:
      raise ValueError(f'{key}[{pattern!r}]={m!r}; must be a number >= 0')
  factors = match_by_path(params, dict(lr_mult), 1.0, key, strict)
  return jax.tree.map(float, factors)


def _pattern_list(patterns: Any, key: str) -> tuple[str, ...]:
  if isinstance(patterns, str) or not all(isinstance(p, str) for p in patterns):
    raise ValueError(f'{key}={patterns!r} must be a list of path patterns')
  return tuple(patterns)


def no_decay_mask(patterns: Sequence[str], strict: bool = True) -> Callable[[Any], Any]:
  """`params -> pytree of bools`: True (decayed) unless a pattern matches the leaf's path.

  Paths and matching as `lr_multipliers` ('backbone/block1_0/norm1/scale'
  matches 'backbone/.*norm'); with `strict`, a pattern matching no parameter
  is an error. This is mmseg's `paramwise_cfg.custom_keys={key: dict(decay_mult=0.)}`.
  `strict=False` is for a mask evaluated on part of the tree (inside `freeze`,
  which hides the frozen leaves), after the patterns were checked on all of it.
  """
  patterns = _pattern_list(patterns, 'optimizer.no_decay')

  def mask(params: Any) -> Any:
    return match_by_path(params, {p: False for p in patterns}, True, 'optimizer.no_decay',
                         strict)

  return mask


def frozen_mask(params: Any, patterns: Sequence[str], key: str = 'optimizer.freeze') -> Any:
  """Pytree of bools like `params`: True where a pattern matches the leaf's path.

  A linear probe freezes everything but the head: `['^(?!head/)']`.
  """
  patterns = _pattern_list(patterns, key)
  return match_by_path(params, {p: True for p in patterns}, False, key)


def frozen_paths(params: Any, patterns: Sequence[str]) -> list[str]:
  """The paths of the leaves `freeze(tx, patterns)` keeps fixed."""
  return [s for s, f in zip(leaf_paths(params), jax.tree.leaves(frozen_mask(params, patterns)))
          if f]


def freeze(tx: optax.GradientTransformation, patterns: Sequence[str]
           ) -> optax.GradientTransformationExtraArgs:
  """`tx` on the leaves no pattern matches; zero updates on the matched ones.

  `optax.multi_transform` labels every leaf `frozen` or `trainable`; the
  frozen ones go to `optax.set_to_zero()`, so params + 0 leaves them
  unchanged and `tx` (its state, its global-norm clipping, its weight decay)
  never sees them, as torch parameters with `requires_grad=False`.
  Patterns are checked against the parameters at `init`.
  """
  patterns = _pattern_list(patterns, 'optimizer.freeze')

  def labels(params: Any) -> Any:
    return jax.tree.map(lambda f: FROZEN if f else TRAINABLE, frozen_mask(params, patterns))

  return optax.multi_transform({TRAINABLE: tx, FROZEN: optax.set_to_zero()}, labels)


def _broadcast(m: Any, u: jax.Array) -> jax.Array:
  """Factor m (a number, or an array along u's leading axis) in u's dtype, broadcastable."""
  m = np.asarray(m, np.float64)
  if m.ndim:
    if m.ndim != 1 or u.ndim < 1 or m.shape[0] != u.shape[0]:
      raise ValueError(f'per-layer factors of shape {m.shape} do not fit a leaf of shape '
                       f'{u.shape} along its leading (stacked-layer) axis')
    m = m.reshape(m.shape + (1,) * (u.ndim - 1))
  return jnp.asarray(m, u.dtype)


def scale_by_multipliers(multipliers: Callable[[Any], Any]) -> optax.GradientTransformation:
  """Multiplies each leaf of the updates by its factor, `multipliers(updates)`.

  `multipliers` maps a pytree to one factor per leaf, computed from paths and
  static shapes at trace time: a number, or a 1-D array broadcast along the
  leaf's leading axis (per-layer factors of blocks stacked by `nn.scan`).
  Factors equal to 1 leave the leaf untouched. Stateless; `init` calls
  `multipliers(params)` once so bad patterns fail before training.
  """

  def init_fn(params):
    multipliers(params)
    return optax.EmptyState()

  def update_fn(updates, state, params=None):
    del params
    factors = multipliers(updates)

    def scale(u, m):
      if np.ndim(m) == 0 and float(m) == 1.0:
        return u
      return u * _broadcast(m, u)

    return jax.tree.map(scale, updates, factors), state

  return optax.GradientTransformation(init_fn, update_fn)


def scale_lr_by_path(tx: optax.GradientTransformation, lr_mult: Mapping[str, float]
                     ) -> optax.GradientTransformationExtraArgs:
  """`tx` with the final update of every leaf matching `lr_mult` multiplied by its factor m.

  Every first-order `optim.create` optimizer ends in `−lr·u` with no state
  depending on lr, so m·(−lr·u) is exactly that leaf trained with learning
  rate m·lr (at every step of the schedule), as a torch/mmseg parameter
  group with `lr_mult=m`; AdamW's decoupled decay −lr·λ·θ is scaled with it,
  as torch multiplies λ by the group's lr. Patterns are checked at `init`
  (see `lr_multipliers`).
  """
  lr_mult = dict(lr_mult)
  return optax.chain(tx, scale_by_multipliers(lambda tree: lr_multipliers(tree, lr_mult)))
