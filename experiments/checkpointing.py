"""Checkpoints of the train state with orbax: periodic, final, keep the last k, atomic.

Orbax writes each step into a temporary directory and renames it into place
when complete (`<workdir>/checkpoints/<step>/`), so a run killed mid-save
leaves the previous checkpoint intact and the torn one is ignored. Arrays are
stored with TensorStore (no pickle). The whole train state — step,
parameters, optimizer state, model state (BatchNorm statistics) — is saved;
everything else a resumed run needs (data order, random keys) is a pure
function of the seed and the step.
"""
from __future__ import annotations

import os
from typing import Any, Optional

import jax
import numpy as np
import orbax.checkpoint as ocp

CHECKPOINT_DIR = 'checkpoints'


class Checkpointer:
  """Saves and restores host (numpy) copies of the train state."""

  def __init__(self, workdir: str, keep: int = 3):
    if keep < 1:
      raise ValueError(f'keep_checkpoints={keep!r}; must be ≥ 1')
    self.directory = os.path.abspath(os.path.join(workdir, CHECKPOINT_DIR))
    self._manager = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(
            max_to_keep=keep, create=True, enable_async_checkpointing=False,
            cleanup_tmp_directories=True))

  def latest_step(self) -> Optional[int]:
    return self._manager.latest_step()

  def all_steps(self) -> list[int]:
    return sorted(self._manager.all_steps())

  def path(self, step: int) -> str:
    return os.path.join(self.directory, str(step))

  def save(self, step: int, state: Any) -> None:
    """Writes `state` (host arrays) as checkpoint `step`; returns when it is on disk."""
    state = jax.tree.map(np.asarray, state)
    self._manager.save(step, args=ocp.args.StandardSave(state), force=True)
    self._manager.wait_until_finished()

  def restore(self, step: int, target: Any) -> Any:
    """Checkpoint `step` in the structure (and dtypes) of `target`."""
    target = jax.tree.map(np.asarray, target)
    restored = self._manager.restore(step, args=ocp.args.StandardRestore(target))
    return jax.tree.map(np.asarray, restored)

  def close(self) -> None:
    self._manager.close()
