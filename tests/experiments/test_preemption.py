"""SIGTERM/SIGINT become a stop request polled at step boundaries."""
from __future__ import annotations

import os
import signal

from experiments import preemption


def test_signal_sets_the_request_and_handlers_are_restored():
  before = signal.getsignal(signal.SIGTERM)
  with preemption.StopRequest() as stop:
    assert not stop.requested and not stop.should_stop()
    os.kill(os.getpid(), signal.SIGTERM)
    assert stop.requested and stop.should_stop() and stop.signal_name == 'SIGTERM'
    os.kill(os.getpid(), signal.SIGINT)  # a second signal does not interrupt the save
    assert stop.signal_name == 'SIGTERM'
  assert signal.getsignal(signal.SIGTERM) is before
