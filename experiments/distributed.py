"""Multi-process runs: the launch flags of `experiments.main` and `jax.distributed.initialize`.

A run over N hosts is N processes, one per host, each started with the same
command and its own `--process_id` (docs/multihost.md):

    python -m experiments.main --config=... --workdir=SHARED \
        --coordinator_address=HOST0:PORT --num_processes=N --process_id=i

`--coordinator_address` is `host:port` of process 0, which serves the
coordination service there; `--local_device_ids` (optional) restricts the
devices this process drives. The three flags go together: all or none. With
none of them and `config.distributed=True`, `jax.distributed.initialize()` is
called without arguments and JAX reads the cluster from its environment
(Slurm, Open MPI, Cloud TPU). On CPU, processes reduce across each other
with gloo over TCP (`jax_cpu_collectives_implementation`, set to 'gloo'
unless the environment names another).

Each process then sees `jax.process_count()` processes and its own
`jax.process_index()`; the trainer feeds each its slice of every global
batch, process 0 alone writes the workdir's files, and every process takes
part in each checkpoint save and restore (orbax synchronises them).
`any_process` is the agreement the processes need at the points where they
could otherwise diverge: preemption, the workdir lock, a damaged checkpoint.
"""
from __future__ import annotations

import dataclasses
import os
import socket
from typing import Callable, Optional

from absl import flags

from experiments import checks

COLLECTIVES_ENV = 'JAX_CPU_COLLECTIVES_IMPLEMENTATION'


@dataclasses.dataclass(frozen=True)
class Launch:
  """The launch flags as given (None: absent)."""
  coordinator_address: Optional[str] = None
  num_processes: Optional[int] = None
  process_id: Optional[int] = None
  local_device_ids: Optional[tuple[int, ...]] = None

  @property
  def explicit(self) -> bool:
    """True when the command line names the cluster (rather than the environment)."""
    return self.coordinator_address is not None


def define_flags(fv: flags.FlagValues) -> Callable[[], Launch]:
  """Defines the launch flags in `fv`; returns a function reading them after parsing."""
  address = flags.DEFINE_string(
      'coordinator_address', None, 'host:port of process 0 (multi-process runs; with '
      '--num_processes and --process_id). Absent with config.distributed=True: JAX '
      'detects Slurm / Open MPI / Cloud TPU.', flag_values=fv)
  count = flags.DEFINE_integer('num_processes', None, 'Number of processes in the run.',
                               flag_values=fv)
  index = flags.DEFINE_integer('process_id', None, 'This process, in [0, num_processes).',
                               flag_values=fv)
  local = flags.DEFINE_list('local_device_ids', None, 'Comma-separated ids of the devices '
                            'this process drives (default: all of its host).', flag_values=fv)

  def read() -> Launch:
    return check(Launch(address.value, count.value, index.value,
                        None if local.value is None else _device_ids(local.value)))
  return read


def _device_ids(values: list[str]) -> tuple[int, ...]:
  try:
    ids = tuple(int(v) for v in values)
  except ValueError:
    ids = ()
  if not ids or any(i < 0 for i in ids) or len(set(ids)) != len(ids):
    raise ValueError(f'--local_device_ids={",".join(values)}; valid: distinct device ids '
                     '>= 0, comma-separated (e.g. 0,1,2,3)')
  return ids


def split_address(address: str) -> tuple[str, int]:
  """'host:port' or '[v6 address]:port' -> (host, port); ValueError when malformed."""
  host, _, port = address.rpartition(':')
  bracketed = host.startswith('[') and host.endswith(']')
  host = host[1:-1] if bracketed else host
  unbracketed_v6 = ':' in host and not bracketed
  if not host or unbracketed_v6 or not port.isdigit() or not 1 <= int(port) <= 65535:
    raise ValueError(f'--coordinator_address={address!r}; valid: host:port of process 0 '
                     '(port 1-65535), e.g. 10.0.0.1:1234')
  return host, int(port)


def check(launch: Launch) -> Launch:
  """`launch` if consistent; else a one-line ValueError. Resolves the coordinator's host."""
  trio = {'--coordinator_address': launch.coordinator_address,
          '--num_processes': launch.num_processes, '--process_id': launch.process_id}
  given = [k for k, v in trio.items() if v is not None]
  if given and len(given) < len(trio):
    missing = [k for k in trio if k not in given]
    raise ValueError(f'{", ".join(given)} given without {", ".join(missing)}; a multi-process '
                     'launch names all three (or none, to let JAX read Slurm / Open MPI / '
                     'Cloud TPU from the environment)')
  if not given:
    return launch
  if launch.num_processes < 1:
    raise ValueError(f'--num_processes={launch.num_processes}; valid: an integer >= 1')
  if not 0 <= launch.process_id < launch.num_processes:
    raise ValueError(f'--process_id={launch.process_id}; valid: 0 to '
                     f'{launch.num_processes - 1} (--num_processes={launch.num_processes})')
  host, port = split_address(launch.coordinator_address)
  try:
    socket.getaddrinfo(host, port)
  except (socket.gaierror, UnicodeError) as e:
    raise ValueError(f'--coordinator_address={launch.coordinator_address!r}: host {host!r} '
                     f'does not resolve ({e})') from None
  return launch


def wanted(launch: Launch, config_distributed: bool) -> bool:
  """Whether this run is multi-process: launch flags given, or `config.distributed`."""
  return launch.explicit or launch.local_device_ids is not None or bool(config_distributed)


def any_process(flag: bool) -> bool:
  """True on every process when `flag` is True on any (a collective when there are several)."""
  import jax  # pylint: disable=g-import-not-at-top
  if jax.process_count() == 1:
    return flag
  import numpy as np  # pylint: disable=g-import-not-at-top
  from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
  return bool(np.any(multihost_utils.process_allgather(np.asarray(flag, np.int32))))


def initialize(launch: Launch) -> None:
  """`jax.distributed.initialize` with the flags given (None: JAX detects them).

  Must run before anything initialises a JAX backend.

  Raises:
    RuntimeError: one line, when JAX finds no cluster or cannot reach the coordinator.
  """
  import jax  # pylint: disable=g-import-not-at-top
  if COLLECTIVES_ENV not in os.environ:
    # Pinned: jaxlib versions differ in their default, and without collectives a CPU psum
    # across processes fails.
    jax.config.update('jax_cpu_collectives_implementation', 'gloo')
  try:
    jax.distributed.initialize(
        coordinator_address=launch.coordinator_address, num_processes=launch.num_processes,
        process_id=launch.process_id,
        local_device_ids=(None if launch.local_device_ids is None
                          else list(launch.local_device_ids)))
  except Exception as e:  # pylint: disable=broad-except  (no cluster found, coordinator down)
    where = ('' if launch.explicit else
             ' (no --coordinator_address: JAX looked for Slurm, Open MPI or Cloud TPU in the '
             'environment; off those, pass --coordinator_address, --num_processes and '
             '--process_id)')
    raise RuntimeError(f'jax.distributed.initialize failed: {checks.one_line(e)}{where}'
                       ) from None
