"""Damaged checkpoints are moved aside and the newest intact one restores; one run per workdir."""
from __future__ import annotations

import glob
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from experiments import checkpointing
from experiments import workdir_lock


def _state(value: float) -> dict:
  return {'params': {'w': np.full((4, 3), value, np.float32)}, 'step': np.int32(value)}


def _saved(tmp_path, steps=(1, 2, 3)) -> checkpointing.Checkpointer:
  ckpt = checkpointing.Checkpointer(str(tmp_path), keep=5)
  for s in steps:
    ckpt.save(s, _state(s))
  return ckpt


def truncate_files(directory: str) -> None:
  """Empties every file below `directory` (a torn copy or a full disk)."""
  for f in glob.glob(os.path.join(directory, '**'), recursive=True):
    if os.path.isfile(f):
      open(f, 'w').close()


def _flip_bytes_of_array_files(step_dir: str) -> None:
  for f in glob.glob(os.path.join(step_dir, 'default', '**', 'd', '*'), recursive=True):
    data = bytearray(open(f, 'rb').read())
    data[len(data) // 2] ^= 0xFF
    open(f, 'wb').write(bytes(data))


def test_intact_restore_is_exact(tmp_path):
  ckpt = _saved(tmp_path)
  step, state = ckpt.restore_latest(_state(0))
  assert step == 3
  np.testing.assert_array_equal(state['params']['w'], _state(3)['params']['w'])
  assert os.path.exists(os.path.join(ckpt.path(3), checkpointing.CHECKSUM_FILE))


def test_no_checkpoint_starts_fresh(tmp_path):
  ckpt = checkpointing.Checkpointer(str(tmp_path))
  target = _state(0)
  assert ckpt.restore_latest(target) == (0, target)


def test_truncated_newest_is_moved_aside_and_older_restores(tmp_path):
  ckpt = _saved(tmp_path)
  ckpt.close()
  truncate_files(os.path.join(tmp_path, 'checkpoints', '3'))
  lines = []
  ckpt = checkpointing.Checkpointer(str(tmp_path), keep=5)
  step, state = ckpt.restore_latest(_state(0), log=lines.append)
  assert step == 2 and int(state['step']) == 2
  assert len(lines) == 1 and 'damaged' in lines[0] and '\n' not in lines[0]
  moved = glob.glob(os.path.join(tmp_path, checkpointing.DAMAGED_DIR, '3-*'))
  assert len(moved) == 1 and os.listdir(moved[0])  # kept, not deleted
  assert ckpt.all_steps() == [1, 2]
  ckpt.save(3, _state(30))  # the run goes on and can write step 3 again
  assert ckpt.restore_latest(_state(0))[0] == 3


def test_corrupt_array_files_fall_back(tmp_path):
  ckpt = _saved(tmp_path)
  ckpt.close()
  _flip_bytes_of_array_files(os.path.join(tmp_path, 'checkpoints', '3'))
  ckpt = checkpointing.Checkpointer(str(tmp_path), keep=5)
  step, state = ckpt.restore_latest(_state(0), log=lambda _: None)
  assert step == 2
  np.testing.assert_array_equal(state['params']['w'], _state(2)['params']['w'])


def test_arrays_that_read_back_wrong_are_caught_by_the_checksums(tmp_path):
  ckpt = _saved(tmp_path)
  recorded = os.path.join(ckpt.path(3), checkpointing.CHECKSUM_FILE)
  sums = json.load(open(recorded))
  key = next(k for k in sums if 'w' in k)
  sums[key] ^= 1  # as if the stored array had changed since it was written
  json.dump(sums, open(recorded, 'w'))
  with pytest.raises(ValueError, match='checksum'):
    ckpt.restore(3, _state(0))
  assert ckpt.restore_latest(_state(0), log=lambda _: None)[0] == 2


def test_all_damaged_is_one_clear_error(tmp_path):
  ckpt = _saved(tmp_path, steps=(1, 2))
  ckpt.close()
  for s in (1, 2):
    truncate_files(os.path.join(tmp_path, 'checkpoints', str(s)))
  ckpt = checkpointing.Checkpointer(str(tmp_path), keep=5)
  with pytest.raises(checkpointing.DamagedCheckpointError, match='no intact checkpoint'):
    ckpt.restore_latest(_state(0), log=lambda _: None)
  assert len(os.listdir(os.path.join(tmp_path, checkpointing.DAMAGED_DIR))) == 2


def test_lock_refuses_a_second_live_holder_and_names_its_pid(tmp_path):
  holder = subprocess.Popen(
      [sys.executable, '-c',
       'import sys, time; from experiments import workdir_lock; '
       f'workdir_lock.WorkdirLock({str(tmp_path)!r}).acquire(); print("held", flush=True); '
       'time.sleep(60)'],
      stdout=subprocess.PIPE, text=True, cwd=os.path.dirname(os.path.dirname(
          os.path.dirname(os.path.abspath(__file__)))))
  try:
    assert holder.stdout.readline().strip() == 'held'
    with pytest.raises(workdir_lock.WorkdirBusyError, match=f'pid {holder.pid}'):
      workdir_lock.WorkdirLock(str(tmp_path)).acquire()
    holder.kill()  # SIGKILL: the kernel drops the flock, the lock file stays behind
    holder.wait()
    assert os.path.exists(os.path.join(tmp_path, workdir_lock.LOCK_FILE))
    with workdir_lock.WorkdirLock(str(tmp_path)) as lock:
      assert f'pid {os.getpid()}' in open(lock.path).read()
  finally:
    if holder.poll() is None:
      holder.kill()


def test_async_saves_equal_sync_saves_and_carry_checksums(tmp_path):
  sync = _saved(tmp_path / 'sync')
  ckpt = checkpointing.Checkpointer(str(tmp_path / 'async'), keep=5, async_save=True)
  for s in (1, 2, 3):
    state = _state(s)
    ckpt.save(s, state)
    state['params']['w'][:] = -1.0  # the caller reuses its buffers at once
  ckpt.wait()
  assert ckpt.all_steps() == sync.all_steps() == [1, 2, 3]
  for s in (1, 2, 3):
    a, b = ckpt.restore(s, _state(0)), sync.restore(s, _state(0))
    np.testing.assert_array_equal(a['params']['w'], b['params']['w'])
    assert os.path.exists(os.path.join(ckpt.path(s), checkpointing.CHECKSUM_FILE))
  ckpt.save(4, _state(4))
  ckpt.close()  # waits for the last save
  assert checkpointing.Checkpointer(str(tmp_path / 'async')).restore_latest(_state(0))[0] == 4
