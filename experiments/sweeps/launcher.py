"""The trial process: `python -m <trainer> --config=FILE --workdir=DIR` as a child.

A trial runs in its own process group with the parent-death signal set
(Linux `prctl(PR_SET_PDEATHSIG, SIGKILL)`), so a trial never outlives the
worker that launched it: a killed worker leaves no orphan training on. While
the child runs, a thread calls `heartbeat()` every `heartbeat_s` seconds: the
study records it so other workers can tell a live trial from a dead one.

Processes are named by (pid, start time): a pid reused by an unrelated
process after a reboot or wrap-around does not pass for the original.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import subprocess
import sys
import threading
import time
from typing import Callable, Optional

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Sets the parent-death signal so the trial dies with its worker, then runs
# the trainer module as `python -m` would.
_LAUNCH = (
    'import sys, runpy\n'
    'try:\n'
    '  import ctypes, signal\n'
    '  ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)\n'
    'except Exception:\n'
    '  pass\n'
    'sys.argv = [sys.argv[1]] + sys.argv[2:]\n'
    'runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)\n')


@dataclasses.dataclass(frozen=True)
class ProcessId:
  """A process as (pid, kernel start time in clock ticks since boot)."""
  pid: int
  start: Optional[str]

  @classmethod
  def of(cls, pid: int) -> ProcessId:
    return cls(pid, _process_start(pid))

  def alive(self) -> bool:
    """Whether the process still runs (and is the same one, not a reused pid)."""
    try:
      os.kill(self.pid, 0)
    except ProcessLookupError:
      return False
    except PermissionError:
      return True
    now = _process_start(self.pid)
    return self.start is None or now is None or now == self.start

  def kill_group(self) -> None:
    """SIGKILL to the process group this process leads, if it still runs."""
    if self.alive():
      with contextlib.suppress(OSError):
        os.killpg(self.pid, signal.SIGKILL)


def _process_start(pid: int) -> Optional[str]:
  try:
    with open(f'/proc/{pid}/stat') as f:
      return f.read().rsplit(')', 1)[1].split()[19]
  except (OSError, IndexError):
    return None


def trial_command(trainer: str, config_file: str, trial_dir: str) -> list[str]:
  """The child's argv: the trainer module with the trial's config and workdir."""
  return [sys.executable, '-c', _LAUNCH, trainer, f'--config={config_file}',
          f'--workdir={trial_dir}']


@dataclasses.dataclass(frozen=True)
class Exit:
  """How a trial process ended: its status (negative: killed by that signal)."""
  returncode: int
  wall_s: float


def run(trainer: str, config_file: str, trial_dir: str, log_path: str, *,
        heartbeat: Callable[[], None], heartbeat_s: float,
        started: Callable[[ProcessId], None] = lambda child: None) -> Exit:
  """Runs one trial to its end; stdout and stderr are appended to `log_path`.

  `started(child)` is called once the child exists; `heartbeat()` right away and
  then every `heartbeat_s` seconds until it exits (its errors are ignored: a
  missed beat only makes the trial look older). Returns when the child exits;
  if this thread is interrupted the child's process group is killed.
  """
  env = dict(os.environ)
  env['PYTHONPATH'] = os.pathsep.join(
      [PROJECT_ROOT] + [p for p in env.get('PYTHONPATH', '').split(os.pathsep) if p])
  done = threading.Event()

  def beat() -> None:
    while True:
      with contextlib.suppress(Exception):
        heartbeat()
      if done.wait(heartbeat_s):
        return

  t0 = time.time()
  with open(log_path, 'ab') as log:
    proc = subprocess.Popen(trial_command(trainer, config_file, trial_dir), cwd=PROJECT_ROOT,
                            env=env, stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    child = ProcessId.of(proc.pid)
    beater = threading.Thread(target=beat, daemon=True)
    try:
      started(child)
      beater.start()
      rc = proc.wait()
    finally:
      done.set()
      if proc.poll() is None:
        child.kill_group()
  return Exit(rc, time.time() - t0)


def failure_line(log_path: str, returncode: int) -> str:
  """Why a trial process failed, in one line: its signal, or its exit status
  and the last line it printed (the trainer ends on a one-line error)."""
  if returncode < 0:
    return f'killed by signal {-returncode}'
  try:
    with open(log_path, 'rb') as f:
      f.seek(max(0, os.path.getsize(log_path) - 8192))
      lines = [l.strip() for l in f.read().decode('utf-8', 'replace').splitlines()]
  except OSError:
    lines = []
  lines = [l for l in lines if l]
  last = lines[-1] if lines else ''
  return f'exit {returncode}: {last[:300]}' if last else f'exit {returncode}'
