"""Checkpoints of the train state with orbax: periodic, final, keep the last k, atomic, verified.

Orbax writes each step into a temporary directory and renames it into place
when complete (`<workdir>/checkpoints/<step>/`), so a run killed mid-save
leaves the previous checkpoint intact and the torn one is ignored. Arrays are
stored with TensorStore (no pickle). The whole train state — step,
parameters, optimizer state, model state (BatchNorm statistics) — is saved;
everything else a resumed run needs (data order, random keys) is a pure
function of the seed and the step.

Beside the arrays each step holds `checksums.json`: the CRC-32 of every
leaf's bytes, written once orbax has committed the step. A restore recomputes
them, so a checkpoint whose files were truncated or overwritten after the
fact (a full disk, a copy gone wrong, bit rot) is recognised as damaged
rather than resumed from. `restore_latest` moves a damaged step aside into
`<workdir>/checkpoints.damaged/` (never deletes it) and falls back to the
newest intact one.

Paths go through experiments/workdir_paths.py, so the workdir may be an
object store (`gs://…`; docs/workdir.md).
"""
from __future__ import annotations

import concurrent.futures
import contextlib
import json
import logging
import time
import zlib
from typing import Any, Callable, Iterator, Optional

import jax
import numpy as np
import orbax.checkpoint as ocp
from etils import epath

from experiments import distributed
from experiments import workdir_paths

CHECKPOINT_DIR = 'checkpoints'
DAMAGED_DIR = 'checkpoints.damaged'
CHECKSUM_FILE = 'checksums.json'
_COMMITTED = 'commit_success.txt'  # orbax's completion marker where it cannot rename


class DamagedCheckpointError(RuntimeError):
  """Checkpoints exist but none of them can be restored."""


def checksums(state: Any) -> dict[str, int]:
  """CRC-32 of every leaf's bytes, keyed by the leaf's '/'-joined path."""
  leaves = jax.tree_util.tree_flatten_with_path(state)[0]
  return {jax.tree_util.keystr(path): zlib.crc32(np.ascontiguousarray(leaf).tobytes())
          for path, leaf in leaves}


def verify_checksums(step_dir: workdir_paths.PathLike, restored: Any) -> None:
  """ValueError when `restored` (host arrays) differs from the step's recorded checksums.

  A step without `checksums.json` (its save did not finish the sidecars) passes.
  """
  recorded_path = workdir_paths.path(step_dir) / CHECKSUM_FILE
  if not recorded_path.exists():
    return
  recorded = json.loads(recorded_path.read_text())
  bad = [k for k, v in checksums(restored).items() if recorded.get(k) != v]
  if bad:
    raise ValueError(f'{len(bad)} array(s) differ from their recorded checksums '
                     f'(first: {bad[0]})')


class Checkpointer:
  """Saves and restores host (numpy) copies of the train state."""

  def __init__(self, workdir: workdir_paths.PathLike, keep: int = 3, async_save: bool = False,
               subdir: str = CHECKPOINT_DIR):
    """`subdir`: where the steps go inside `workdir` (the best weights: 'checkpoints/best')."""
    if keep < 1:
      raise ValueError(f'keep_checkpoints={keep!r}; must be ≥ 1')
    self.workdir = workdir_paths.path(workdir)
    self.directory = self.workdir / subdir
    self._keep = keep
    self._async = async_save
    self._pending: Optional[tuple[int, concurrent.futures.Future, dict[str, Any]]] = None
    self._hasher = concurrent.futures.ThreadPoolExecutor(1) if async_save else None
    self._opened: Optional[ocp.CheckpointManager] = self._open()

  @property
  def _manager(self) -> ocp.CheckpointManager:
    """Orbax's manager, reopened on first use after a step was moved aside."""
    if self._opened is None:
      self._opened = self._open()
    return self._opened

  def _open(self) -> ocp.CheckpointManager:
    with _absl_errors_silenced():  # a damaged step's metadata is reported by restore_latest
      return ocp.CheckpointManager(
          self.directory,
          options=ocp.CheckpointManagerOptions(
              max_to_keep=self._keep, create=True, enable_async_checkpointing=self._async,
              cleanup_tmp_directories=True))

  def latest_step(self) -> Optional[int]:
    return self._manager.latest_step()

  def all_steps(self) -> list[int]:
    return sorted(self._manager.all_steps())

  def path(self, step: int) -> epath.Path:
    return self.directory / str(step)

  def save(self, step: int, state: Any, extras: Optional[dict[str, Any]] = None) -> None:
    """Writes `state` (host arrays) as checkpoint `step`, with `extras` ({file name: JSON
    value}) beside it once the step is committed.

    Synchronous: returns when the step is on disk. Asynchronous: returns once
    orbax holds its own copy of the arrays; the write, and the checksums
    computed on a worker thread, finish in the background (`wait`).
    """
    # A copy: the caller's host arrays may alias device buffers the next step reuses.
    state = jax.tree.map(lambda x: np.array(x, copy=True), state)
    extras = dict(extras or {})
    self._finish_pending()
    self._manager.save(step, args=ocp.args.StandardSave(state), force=True)
    if self._async:
      self._pending = (step, self._hasher.submit(checksums, state), extras)
    else:
      self._manager.wait_until_finished()
      self._write_sidecars(step, checksums(state), extras)

  def wait(self) -> None:
    """Blocks until every save has been committed to disk with its checksums."""
    self._finish_pending()

  def _finish_pending(self) -> None:
    self._manager.wait_until_finished()
    if self._pending is not None:
      step, sums, extras = self._pending
      self._pending = None
      self._write_sidecars(step, sums.result(), extras)

  def _write_sidecars(self, step: int, sums: dict[str, int], extras: dict[str, Any]) -> None:
    """The extras, then the checksums (last: their presence marks a complete step)."""
    if jax.process_index() != 0 or not self.path(step).is_dir():
      return
    for name, value in [*extras.items(), (CHECKSUM_FILE, sums)]:
      workdir_paths.write_text_atomically(self.path(step) / name, json.dumps(value))

  def restore(self, step: int, target: Any) -> Any:
    """Checkpoint `step` in the structure (and dtypes) of `target`.

    Raises:
      ValueError: the step's arrays do not match its recorded checksums.
      Exception: whatever orbax raises for files it cannot read.
    """
    target = jax.tree.map(np.asarray, target)
    restored = self._manager.restore(step, args=ocp.args.StandardRestore(target))
    restored = jax.tree.map(np.asarray, restored)
    verify_checksums(self.path(step), restored)
    return restored

  def restore_latest(self, target: Any, log: Callable[[str], None] = print
                     ) -> tuple[int, Any]:
    """(step, state) of the newest checkpoint that restores intact; (0, target) if none exist.

    Each damaged step on the way is moved aside into `<workdir>/checkpoints.damaged/`
    and reported with one `log` line.

    Raises:
      DamagedCheckpointError: there were checkpoints and none of them is intact.
    """
    damaged = []
    for step in reversed(self._steps_on_disk()):
      error = None
      try:
        with _absl_errors_silenced():
          restored = self.restore(step, target)
      except Exception as e:  # pylint: disable=broad-except  (any unreadable checkpoint)
        error = e
      # Processes agree, so all resume from the same step (and all reopen orbax below).
      if not distributed.any_process(error is not None):
        return step, restored
      reason = (f'{type(error).__name__}: {" ".join(str(error).split())[:200]}' if error
                else 'another process could not read it')
      moved = self._move_aside(step)
      damaged.append(moved)
      if jax.process_index() == 0:
        log(f'checkpoint {self.path(step)} is damaged ({reason}); moved it to {moved}; '
            'trying an older one')
    if damaged:
      raise DamagedCheckpointError(
          f'no intact checkpoint in {self.directory}: the damaged ones were moved to '
          f'{self.workdir / DAMAGED_DIR}; restore one by hand or start a new '
          'workdir')
    return 0, target

  def _steps_on_disk(self) -> list[int]:
    """Committed step directories, read from disk (orbax's own listing may need metadata)."""
    if not self.directory.is_dir():
      return []
    # Locally orbax renames a complete step into place; on an object store it
    # writes the step in place and marks it complete with a commit file.
    local = workdir_paths.is_local(self.directory)
    return sorted(int(p.name) for p in self.directory.iterdir()
                  if p.name.isdigit() and p.is_dir() and (local or (p / _COMMITTED).exists()))

  def _move_aside(self, step: int) -> str:
    """Moves `step` into DAMAGED_DIR (process 0; every process must call it)."""
    self._finish_pending()
    self._manager.close()
    self._opened = None  # its step list is stale; reopened when next needed
    if jax.process_index() != 0:  # process 0 moves it; the others only skip it
      return str(self.path(step))
    dest_dir = self.workdir / DAMAGED_DIR
    dest_dir.mkdir(parents=True, exist_ok=True)
    name = f'{step}-{time.strftime("%Y%m%d-%H%M%S", time.gmtime())}'
    suffix = 0
    while (dest_dir / (name + (f'.{suffix}' if suffix else ''))).exists():
      suffix += 1
    dest = dest_dir / (name + (f'.{suffix}' if suffix else ''))
    self.path(step).rename(dest)
    return str(dest)

  def delete(self, step: int) -> None:
    """Removes checkpoint `step`."""
    self._finish_pending()
    self._manager.delete(step)

  def close(self) -> None:
    """Waits for pending saves, then releases orbax's resources."""
    if self._opened is not None:
      self._finish_pending()
      self._opened.close()
      self._opened = None
    if self._hasher is not None:
      self._hasher.shutdown()


@contextlib.contextmanager
def _absl_errors_silenced() -> Iterator[None]:
  """Silences absl's ERROR lines (orbax logs every unreadable file) while probing a step."""
  logger = logging.getLogger('absl')
  level = logger.level
  logger.setLevel(logging.CRITICAL)
  try:
    yield
  finally:
    logger.setLevel(level)
