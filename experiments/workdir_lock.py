"""One live run per workdir: an advisory `fcntl.flock` on `<workdir>/.lock`.

The lock file holds the holder's pid and host. The kernel drops a flock when
its process dies, however it dies (SIGKILL included), so a lock left by a
killed run is stale by construction: the next run takes it over and rewrites
the pid. A second process on a workdir whose holder is alive is refused with
a `WorkdirBusyError` naming that pid.

A run of several processes shares one workdir: process 0 alone takes the
lock (`for_run`), and every process learns whether it got it, so a refused
run stops on all of them rather than leaving the others waiting for it.

An object-store workdir (`gs://…`, experiments/workdir_paths.py) has no
flock: there the lock is skipped, and two live runs on one remote workdir
are not detected (docs/workdir.md).
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import socket
from typing import Iterator, Optional

from experiments import workdir_paths

LOCK_FILE = '.lock'


class WorkdirBusyError(RuntimeError):
  """Another live process holds the workdir."""


class WorkdirLock:
  """Holds `<workdir>/.lock` from `acquire()` until `release()` (or process exit)."""

  def __init__(self, workdir: workdir_paths.PathLike):
    self.local = workdir_paths.is_local(workdir)
    self.path = os.path.join(workdir, LOCK_FILE)
    self._fd: Optional[int] = None

  def acquire(self) -> 'WorkdirLock':
    """Takes the lock, creating the workdir if needed.

    Raises:
      WorkdirBusyError: a live process holds it; the message names its pid.
    """
    if not self.local:
      return self  # no flock on an object store (module docstring)
    os.makedirs(os.path.dirname(self.path), exist_ok=True)
    fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      holder = os.read(fd, 256).decode(errors='replace').strip() or 'an unknown process'
      os.close(fd)
      raise WorkdirBusyError(
          f'workdir {os.path.dirname(self.path)!r} is in use by a live run ({holder}); wait '
          'for it to finish or choose another --workdir') from None
    os.ftruncate(fd, 0)
    os.write(fd, f'pid {os.getpid()} on {socket.gethostname()}\n'.encode())
    os.fsync(fd)
    self._fd = fd
    return self

  def release(self) -> None:
    if self._fd is not None:
      fcntl.flock(self._fd, fcntl.LOCK_UN)
      os.close(self._fd)
      self._fd = None

  def __enter__(self) -> 'WorkdirLock':
    return self.acquire()

  def __exit__(self, *exc) -> None:
    self.release()


@contextlib.contextmanager
def for_run(workdir: str) -> Iterator[None]:
  """The workdir's lock, held by process 0 for the whole run (see the module docstring).

  Raises:
    WorkdirBusyError: on every process, when a live run holds `workdir`.
  """
  import jax  # pylint: disable=g-import-not-at-top
  from experiments import distributed  # pylint: disable=g-import-not-at-top
  lock, refused = None, None
  if jax.process_index() == 0:
    try:
      lock = WorkdirLock(workdir).acquire()
    except WorkdirBusyError as e:
      refused = e
  try:
    if distributed.any_process(refused is not None):
      raise refused or WorkdirBusyError(
          f'workdir {workdir!r} is in use by a live run (process 0 of this run found it '
          'locked); wait for it to finish or choose another --workdir')
    yield
  finally:
    if lock is not None:
      lock.release()
