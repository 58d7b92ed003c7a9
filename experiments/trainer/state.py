"""What a run holds: the validated `Setup`, the `TrainState`, and their device copies.

`AXIS` is the name of the pmap axis over the local devices ('batch'): the
train step averages gradients over it, SyncBN reduces its statistics over it,
the eval step sums over it.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
from jax.sharding import Mesh
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
import ml_collections
import numpy as np
import optax

from experiments import config_domains
from experiments import data as data_lib

AXIS = 'batch'


class NonFiniteError(RuntimeError):
  """The loss or the gradients became NaN/Inf; the run stopped."""


class Preempted(RuntimeError):
  """SIGTERM/SIGINT stopped the run after saving the step it had reached."""


class TrainState(NamedTuple):
  """Everything that changes during training (and goes into a checkpoint)."""
  step: Any          # int32 scalar: updates done so far
  params: Any        # float32 parameters
  opt_state: Any     # optimizer state (float32)
  model_state: Any   # non-trained collections, e.g. {'batch_stats': ...}; {} if none


@dataclasses.dataclass
class Setup:
  """A validated experiment: every object the loop needs, nothing run yet.

  `frozen_state`: a pytree of bools like the model state (True: a BatchNorm
  statistic of a module frozen by optimizer.freeze, kept fixed), or None.
  `initial_variables`: host variables read from `config.init_from` (the run
  starts from them when there is no checkpoint to resume), or None.
  """
  config: ml_collections.ConfigDict
  info: data_lib.DatasetInfo
  module: Any
  task: Any
  tx: optax.GradientTransformation
  schedule: Callable[[Any], Any]
  penalty: Optional[Callable[[Any], jax.Array]]
  total_steps: int
  global_batch: int
  num_devices: int
  num_local_devices: int
  variable_shapes: Any
  devices: list[Any]
  eval_batch: int
  frozen_state: Any = None
  initial_variables: Any = None


def dtype_of(name: str) -> Any:
  """The compute dtype called `name` (one of `config_domains.DTYPES`)."""
  if name not in config_domains.DTYPES:
    raise ValueError(f'dtype={name!r}; valid: {", ".join(config_domains.DTYPES)}')
  return getattr(jnp, name)


def pmap_devices(devices: list[Any]) -> Optional[list[Any]]:
  """The `devices=` of a pmap over the local `devices`.

  One process: `devices` itself (possibly a subset). Several: None, pmap's
  default of every process's devices grouped by process, so the mapped axis
  (and its psums) spans the whole run rather than this host; pmap needs the
  same list on every process, hence all local devices on each.
  """
  if jax.process_count() == 1:
    return devices
  if list(devices) != jax.local_devices():
    raise ValueError(f'a multi-process run maps over every local device; got {len(devices)} '
                     f'of {jax.local_device_count()} (use --local_device_ids to choose them)')
  return None


def mesh_devices(devices: list[Any]) -> list[Any]:
  """The devices a run's collectives span: `devices` (one process) or every process's."""
  return list(devices) if jax.process_count() == 1 else jax.devices()


def replicate(tree: Any, devices: list[Any]) -> Any:
  """One copy of `tree` per device, stacked along a leading device axis.

  Laid out as pmap lays out its own outputs (a NamedSharding over a mesh
  whose one axis is AXIS, in the pmap's device order): the state a step
  returns then has the sharding of the state it was given, and the step
  compiles once rather than again on its second call.
  """
  pmap_devices(devices)  # checks a multi-process run maps over every local device
  mapped = mesh_devices(devices)
  sharding = NamedSharding(Mesh(np.array(mapped), (AXIS,)), P(AXIS))

  def put(x):
    x = np.asarray(x)
    local = np.broadcast_to(x, (len(devices),) + x.shape)
    return jax.make_array_from_process_local_data(sharding, local,
                                                  (len(mapped),) + x.shape)
  return jax.tree.map(put, tree)


def unreplicate(tree: Any) -> Any:
  """Host copy of device 0's replica (no per-shape compiled slicing)."""
  def first(x):
    shard = np.asarray(x.addressable_shards[0].data)
    return shard[0] if shard.ndim == x.ndim else shard
  return jax.tree.map(first, tree)
