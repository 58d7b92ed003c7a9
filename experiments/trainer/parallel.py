"""`config.parallelism`: how the step is compiled and where the state and batches live.

- 'pmap' (default): `jax.pmap` over the local devices (axis AXIS); the state
  is replicated with a leading device axis, each device steps on its shard
  of the batch and the gradients are pmean'd (trainer/step.py).
- 'jit': `jax.jit` over a `Mesh` of every device of every process with one
  axis `DATA_AXIS`; batches are global arrays sharded `P('data')` (built with
  `jax.make_array_from_process_local_data` from each process's rows), the
  state is replicated `P()`, XLA inserts the gradient all-reduce.
- 'fsdp': 'jit' with every parameter and optimizer-state leaf split along
  `DATA_AXIS` (trainer/sharding.py says which dimension); XLA all-gathers
  the parameters where the step needs them and reduce-scatters the gradients.

All three minimise the same J(θ) on the same global batches. Checkpoints do
not depend on the mode: the state is saved as full host arrays (`host`) and
placed back with the mode's shardings (`place_state`), so a run resumes from
another mode's checkpoint. Second-order optimizers (`value_fn`,
`residual_fn`) are pmap-only (`check`).
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import ml_collections
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from experiments.trainer import optimizer as optimizer_lib
from experiments.trainer import sharding
from experiments.trainer.evaluation import EvalStep
from experiments.trainer.evaluation import make_eval_fns
from experiments.trainer.evaluation import pmap_eval_step
from experiments.trainer.state import AXIS
from experiments.trainer.state import mesh_devices
from experiments.trainer.state import pmap_devices
from experiments.trainer.state import replicate
from experiments.trainer.state import Setup
from experiments.trainer.state import TrainState
from experiments.trainer.state import unreplicate
from experiments.trainer.step import make_train_step


def mode_of(config: ml_collections.ConfigDict) -> str:
  return config.get('parallelism', 'pmap') or 'pmap'


def check(config: ml_collections.ConfigDict) -> None:
  """ValueError when `config` cannot run under its parallelism."""
  mode = mode_of(config)
  if mode not in sharding.MODES:
    raise ValueError(f'parallelism={mode!r}; valid: one of {", ".join(sharding.MODES)}')
  if mode != 'pmap' and (optimizer_lib.needs_objective(config) or
                         optimizer_lib.needs_residuals(config)):
    raise ValueError(f'optimizer.name={config.optimizer.name!r} evaluates the objective inside '
                     f'its update and runs under parallelism=pmap only, not {mode!r}')


class Parallel(NamedTuple):
  """The mode's compiled functions and placements (see the module docstring)."""
  mode: str
  num_devices: int
  train_step: Callable[..., Any]      # (state, batch, rng) -> (state, metrics); state donated
  eval_step: EvalStep
  place_state: Callable[[TrainState], Any]   # host TrainState -> device state
  place_rng: Callable[[jax.Array], Any]
  place_batch: Any                    # host batch [D, b/D, ...] -> device batch; None: pmap's
  host: Callable[[Any], Any]          # device tree -> one full host (numpy) copy
  state_bytes: int                    # parameters + optimizer state per device


def state_shapes(setup: Setup) -> TrainState:
  """ShapeDtypeStructs of the run's TrainState (nothing allocated)."""
  params = setup.variable_shapes['params']
  model_state = {k: v for k, v in setup.variable_shapes.items() if k != 'params'}
  opt_state = jax.eval_shape(setup.tx.init, params)
  return TrainState(jax.ShapeDtypeStruct((), np.int32), params, opt_state, model_state)


def to_host(x: jax.Array) -> np.ndarray:
  """The full value of a global array on this host (gathered from the other processes)."""
  if x.is_fully_addressable:
    return np.asarray(x)
  if x.sharding.is_fully_replicated:
    return np.asarray(x.addressable_shards[0].data)
  return np.asarray(multihost_utils.process_allgather(x, tiled=True))


def _put(x: Any, where: NamedSharding) -> jax.Array:
  """A host array (the same on every process) as a global array laid out as `where`."""
  x = np.asarray(x)
  return jax.make_array_from_callback(x.shape, where, lambda index: x[index])


def make(setup: Setup) -> Parallel:
  """The run's `Parallel` for `config.parallelism`."""
  mode = mode_of(setup.config)
  shapes = state_shapes(setup)
  state_bytes = sharding.per_device_bytes((shapes.params, shapes.opt_state), mode,
                                          setup.num_devices)
  if mode == 'pmap':
    return Parallel(
        mode, setup.num_devices,
        jax.pmap(make_train_step(setup), axis_name=AXIS, donate_argnums=(0,),
                 devices=pmap_devices(setup.devices)),
        pmap_eval_step(setup),
        lambda state: replicate(state, setup.devices),
        lambda rng: replicate(rng, setup.devices),
        None, unreplicate, state_bytes)

  mesh = jax.sharding.Mesh(np.array(mesh_devices(setup.devices)), (sharding.DATA_AXIS,))
  named = lambda spec: NamedSharding(mesh, spec)  # noqa: E731
  replicated = named(P())
  rows = named(P(sharding.DATA_AXIS))
  state_sharding = jax.tree.map(named, sharding.state_specs(shapes, mode, mesh.size),
                                is_leaf=lambda x: isinstance(x, P))
  micro = named(P(None, sharding.DATA_AXIS))
  step = make_train_step(setup, axis=None, shards=mesh.size,
                         constrain=lambda x: jax.lax.with_sharding_constraint(x, micro))
  train_step = jax.jit(step, in_shardings=(state_sharding, rows, replicated),
                       out_shardings=(state_sharding, replicated), donate_argnums=(0,))

  def place_batch(batch):
    """This process's rows [D_local, b/D, ...] -> global arrays [B, ...] split over 'data'."""
    return jax.tree.map(lambda x: jax.make_array_from_process_local_data(
        rows, np.reshape(x, (-1, *np.shape(x)[2:]))), batch)

  fns = make_eval_fns(setup, axis=None)
  eval_step = EvalStep(jax.jit(fns.forward), jax.jit(fns.sums, out_shardings=replicated),
                       place_batch, lambda tree: jax.tree.map(to_host, tree))
  return Parallel(
      mode, mesh.size, train_step, eval_step,
      lambda state: jax.tree.map(_put, state, state_sharding),
      lambda rng: _put(rng, replicated),
      place_batch, lambda tree: jax.tree.map(to_host, tree), state_bytes)
