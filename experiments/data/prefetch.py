"""Host-to-device prefetching: batches land on the devices before they are needed.

A background thread prepares host batches (numpy releases the GIL in its
heavy ops, tf.data runs its own threads) and puts each one on the local
devices with `jax.device_put` and a `NamedSharding` that splits the
leading axis D over them (what the removed `jax.device_put_sharded` did), so
the arrays are ready for a `pmap`'d step. Order is preserved and
`size` bounds how many batches are in flight.

`size=0` prepares each batch in the consumer's own thread when it is asked
for. That is the better choice when the step runs on the host's CPUs
(`default_size`): XLA:CPU already keeps every core busy, so a producer
thread cannot overlap with the step, only preempt its workers (a
preempted worker stalls the others at the end of their fused loop) and
take the GIL from the thread that dispatches the step.
"""
from __future__ import annotations

import functools
import queue
import threading
from typing import Any, Callable, Iterator, Optional, Sequence

import jax
import numpy as np

_DONE = object()


def _shard(batch: Any, sharding: jax.sharding.Sharding) -> Any:
  return jax.tree_util.tree_map(lambda x: jax.device_put(x, sharding), batch)


def default_size(devices: Sequence[jax.Device]) -> int:
  """Batches to prefetch when the config leaves it to the trainer: 0 on CPU devices, else 2."""
  return 0 if all(d.platform == 'cpu' for d in devices) else 2


def prefetch_to_device(iterator: Iterator[Any], size: Optional[int] = 2,
                       devices: Optional[Sequence[jax.Device]] = None,
                       place: Optional[Callable[[Any], Any]] = None) -> Iterator[Any]:
  """Yields the batches of `iterator` as device arrays sharded over `devices`.

  Args:
    iterator: yields pytrees of arrays with leading axis len(devices).
    size: batches transferred ahead of the consumer by a background thread;
      0: none, each batch is placed in the consumer's thread on request;
      None: `default_size(devices)`.
    devices: defaults to `jax.local_devices()`.
    place: host batch -> device batch, instead of the split over `devices`
      (the jit trainer's global arrays on its mesh).
  """
  devices = list(devices or jax.local_devices())
  if size is None:
    size = default_size(devices)
  if size < 0:
    raise ValueError(f'size={size} must be >= 0')
  if place is None:
    # Leading axis split over the devices: what `pmap` (and `shard_map`) consume.
    sharding = jax.sharding.NamedSharding(jax.sharding.Mesh(np.array(devices), ('batch',)),
                                          jax.sharding.PartitionSpec('batch'))
    place = functools.partial(_shard, sharding=sharding)
  if size == 0:
    return (place(batch) for batch in iterator)  # a generator: the caller may close() it
  return _threaded(iterator, size, place)


def _threaded(iterator: Iterator[Any], size: int, place: Callable[[Any], Any]
              ) -> Iterator[Any]:
  """The background-thread prefetcher of `prefetch_to_device` (size >= 1)."""
  q: queue.Queue = queue.Queue(maxsize=size)
  stop = threading.Event()

  def producer():
    try:
      for batch in iterator:
        item = place(batch)
        while not stop.is_set():
          try:
            q.put(item, timeout=0.1)
            break
          except queue.Full:
            continue
        if stop.is_set():
          return
      q.put(_DONE)
    except BaseException as e:  # pylint: disable=broad-except  (re-raised in the consumer)
      q.put(e)

  thread = threading.Thread(target=producer, daemon=True, name='prefetch_to_device')
  thread.start()
  try:
    while True:
      item = q.get()
      if item is _DONE:
        return
      if isinstance(item, BaseException):
        raise item
      yield item
  finally:
    stop.set()
    # Join the producer: a daemon thread still inside jax or numpy when the
    # interpreter exits is killed mid-C++ and aborts the process (SIGABRT).
    while thread.is_alive():
      try:
        q.get_nowait()  # unblocks a producer waiting on a full queue
      except queue.Empty:
        pass
      thread.join(timeout=0.05)
