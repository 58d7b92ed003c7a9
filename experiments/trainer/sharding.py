"""Where the train state lives under each `config.parallelism`, and its bytes per device.

Three layouts over D devices (one mesh axis, `DATA_AXIS`):

- 'pmap' and 'jit': every leaf replicated, so each device holds the whole state;
- 'fsdp' (ZeRO-3, Rajbhandari et al. 2020): each parameter and optimizer-state
  leaf is split along `DATA_AXIS` on one dimension, chosen by `fsdp_dim`: the
  largest dimension whose size D divides (the first of equal ones). A leaf with
  no such dimension (scalars, odd sizes) stays replicated. The step counter
  and the model state (BatchNorm statistics) stay replicated.

From shapes alone (`jax.eval_shape`, nothing allocated), the bytes one device
holds are

    bytes(mode) = Σ_leaves size·itemsize / (D if the leaf is split else 1),

so bytes('fsdp') = bytes('jit')_split / D + remainder, the remainder being
the bytes of the leaves that stay replicated (`unshardable_bytes`).
"""
from __future__ import annotations

from typing import Any, Optional, Sequence

import jax
import numpy as np
from jax.sharding import PartitionSpec as P

MODES = ('pmap', 'jit', 'fsdp')
DATA_AXIS = 'data'


def fsdp_dim(shape: Sequence[int], num_devices: int) -> Optional[int]:
  """The dimension fsdp splits a leaf of `shape` along: the largest that `num_devices`
  divides (the first of equal ones), or None (the leaf stays replicated)."""
  best = None
  for i, size in enumerate(shape):
    if size % num_devices == 0 and size >= num_devices and (best is None or
                                                            size > shape[best]):
      best = i
  return best


def leaf_spec(shape: Sequence[int], mode: str, num_devices: int) -> P:
  """The PartitionSpec of one parameter or optimizer-state leaf under `mode`."""
  if mode not in MODES:
    raise ValueError(f'parallelism={mode!r}; valid: one of {", ".join(MODES)}')
  dim = fsdp_dim(shape, num_devices) if mode == 'fsdp' and num_devices > 1 else None
  if dim is None:
    return P()
  return P(*([None] * dim), DATA_AXIS)


def tree_specs(tree: Any, mode: str, num_devices: int) -> Any:
  """`leaf_spec` of every leaf of `tree` (arrays or ShapeDtypeStructs)."""
  return jax.tree.map(lambda x: leaf_spec(np.shape(x), mode, num_devices), tree)


def state_specs(state: Any, mode: str, num_devices: int) -> Any:
  """PartitionSpecs of a TrainState: params and opt_state by `leaf_spec`, the rest P()."""
  replicated = lambda tree: jax.tree.map(lambda _: P(), tree)  # noqa: E731
  return type(state)(replicated(state.step),
                     tree_specs(state.params, mode, num_devices),
                     tree_specs(state.opt_state, mode, num_devices),
                     replicated(state.model_state))


def _nbytes(x: Any) -> int:
  return int(np.prod(np.shape(x), dtype=np.int64)) * np.dtype(x.dtype).itemsize


def per_device_bytes(tree: Any, mode: str, num_devices: int) -> int:
  """Bytes of `tree` on one device when laid out as `mode` over `num_devices` devices."""
  total = 0
  for leaf in jax.tree.leaves(tree):
    split = leaf_spec(np.shape(leaf), mode, num_devices) != P()
    total += _nbytes(leaf) // num_devices if split else _nbytes(leaf)
  return total


def unshardable_bytes(tree: Any, num_devices: int) -> int:
  """Bytes of the leaves fsdp leaves replicated (no dimension divisible by `num_devices`)."""
  return sum(_nbytes(leaf) for leaf in jax.tree.leaves(tree)
             if fsdp_dim(np.shape(leaf), num_devices) is None)
