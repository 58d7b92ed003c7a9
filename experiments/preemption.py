"""Preemption: SIGTERM or SIGINT asks the run to stop at the next step boundary.

Slurm, Kubernetes and Cloud TPU send SIGTERM some seconds before they kill a
job. `StopRequest` turns the signal into a flag that the training loop polls
after each step: it finishes the step it is in, saves a checkpoint, waits
for the save and exits with `EXIT_PREEMPTED` (75, `EX_TEMPFAIL` of
sysexits.h: "temporary failure, retry"), so a scheduler's requeue or the
same command run again resumes bit-exactly. A second signal of the same
kind while the save is under way is ignored rather than killing the save.

With several processes, the one that got the signal may not be the only one
that did; `should_stop` agrees across processes (any process's request stops
them all at the same step), as a collective save needs every process.
"""
from __future__ import annotations

import signal
import threading
from typing import Any, Optional

from experiments import distributed

EXIT_PREEMPTED = 75
SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopRequest:
  """Installs handlers for SIGNALS while entered; `requested` tells whether one arrived."""

  def __init__(self):
    self._event = threading.Event()
    self._previous: dict[int, Any] = {}
    self.signal_name: Optional[str] = None

  def _handle(self, signum, frame) -> None:
    del frame
    if not self._event.is_set():
      self.signal_name = signal.Signals(signum).name
      self._event.set()

  @property
  def requested(self) -> bool:
    return self._event.is_set()

  def should_stop(self) -> bool:
    """True on every process when any process has a request (a collective with >1 process)."""
    return distributed.any_process(self._event.is_set())

  def __enter__(self) -> 'StopRequest':
    if threading.current_thread() is threading.main_thread():
      for s in SIGNALS:
        self._previous[s] = signal.signal(s, self._handle)
    return self

  def __exit__(self, *exc) -> None:
    for s, handler in self._previous.items():
      signal.signal(s, handler)
    self._previous.clear()
