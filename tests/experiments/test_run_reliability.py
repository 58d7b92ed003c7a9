"""Nothing is lost: SIGTERM saves and resumes bit-exactly, damaged checkpoints fall back to an
intact one, a live run's workdir is refused, NaN eval metrics stop the run."""
from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time

import pytest

from experiments import checkpointing
from experiments import metrics
from experiments import preemption
from experiments import workdir_lock
from experiments.trainer import loop
from experiments.trainer import state as state_lib
from tests.experiments.test_checkpoint_recovery import truncate_files
from tests.experiments.test_main import comparable
from tests.experiments.test_main import main_inprocess
from tests.experiments.test_main import MLP
from tests.experiments.test_main import ROOT
from tests.experiments.test_main import run_main

ARGS = [f'--config={MLP}', '--config.total_steps=300', '--config.total_epochs=0',
        '--config.log_every=10', '--config.eval_every=100', '--config.checkpoint_every=100',
        '--config.model.overrides.width=64']


def _straight(tmp_path, capsys, args=ARGS):
  status, err = main_inprocess([*args, f'--workdir={tmp_path / "straight"}'], capsys)
  assert status == 0, err
  return metrics.read_jsonl(str(tmp_path / 'straight' / metrics.METRICS_FILE))


def test_sigterm_saves_exits_75_and_resumes_bit_identical(tmp_path, capsys):
  workdir = tmp_path / 'preempted'
  proc = subprocess.Popen([sys.executable, '-m', 'experiments.main', *ARGS,
                           f'--workdir={workdir}'], cwd=ROOT, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
  jsonl = workdir / metrics.METRICS_FILE
  deadline = time.time() + 300
  while time.time() < deadline and proc.poll() is None:
    steps = [r['step'] for r in metrics.read_jsonl(str(jsonl))]
    if steps and steps[-1] >= 20:
      break
    time.sleep(0.01)
  proc.send_signal(signal.SIGTERM)
  _, err = proc.communicate(timeout=300)
  assert proc.returncode == preemption.EXIT_PREEMPTED, err
  assert err.count('\n') == 1 and 'preempted: SIGTERM at step' in err and 'Traceback' not in err
  saved = [int(s) for s in os.listdir(workdir / 'checkpoints') if s.isdigit()]
  assert saved and 20 <= max(saved) < 300  # the step it reached, not the last periodic one
  assert os.path.exists(workdir / 'checkpoints' / str(max(saved)) / checkpointing.CHECKSUM_FILE)

  out = run_main([*ARGS, f'--workdir={workdir}'])
  assert out.returncode == 0, out.stderr
  assert 'Resuming from' in out.stdout
  assert comparable(metrics.read_jsonl(str(jsonl))) == comparable(_straight(tmp_path, capsys))


def test_truncated_newest_checkpoint_is_moved_aside_and_the_run_resumes(tmp_path, capsys):
  workdir = tmp_path / 'damaged'
  status, err = main_inprocess([*ARGS, f'--workdir={workdir}'], capsys)
  assert status == 0, err
  truncate_files(str(workdir / 'checkpoints' / '300'))
  out = run_main([*ARGS, f'--workdir={workdir}'])
  assert out.returncode == 0, out.stderr
  assert 'Traceback' not in out.stderr
  damaged_lines = [l for l in out.stdout.splitlines() if 'is damaged' in l]
  assert len(damaged_lines) == 1 and 'checkpoints.damaged' in damaged_lines[0]
  assert 'Resuming from' in out.stdout and '/200' in out.stdout
  assert len(os.listdir(workdir / checkpointing.DAMAGED_DIR)) == 1  # kept, not deleted
  resumed = metrics.read_jsonl(str(workdir / metrics.METRICS_FILE))
  assert comparable(resumed) == comparable(_straight(tmp_path, capsys))


def test_every_checkpoint_damaged_exits_2_naming_the_directory(tmp_path, capsys):
  args = [*ARGS[:1], '--config.total_steps=40', *ARGS[2:5], '--config.checkpoint_every=20',
          *ARGS[6:]]
  workdir = tmp_path / 'ruined'
  status, err = main_inprocess([*args, f'--workdir={workdir}'], capsys)
  assert status == 0, err
  truncate_files(str(workdir / 'checkpoints'))
  out = run_main([*args, f'--workdir={workdir}'])
  assert out.returncode == 2
  assert out.stderr.count('\n') == 1 and 'no intact checkpoint in' in out.stderr
  assert len(os.listdir(workdir / checkpointing.DAMAGED_DIR)) == 2


def test_a_workdir_held_by_a_live_run_is_refused(tmp_path, capsys):
  args = [*ARGS[:1], '--config.total_steps=30', *ARGS[2:]]
  workdir = tmp_path / 'held'
  status, err = main_inprocess([*args, f'--workdir={workdir}'], capsys)
  assert status == 0, err
  holder = subprocess.Popen(
      [sys.executable, '-c', 'import time; from experiments import workdir_lock; '
       f'workdir_lock.WorkdirLock({str(workdir)!r}).acquire(); print("held", flush=True); '
       'time.sleep(120)'], cwd=ROOT, stdout=subprocess.PIPE, text=True)
  try:
    assert holder.stdout.readline().strip() == 'held'
    before = sorted(os.listdir(workdir))
    status, err = main_inprocess([*args, f'--workdir={workdir}'], capsys)
    assert status == 2 and err.count('\n') == 1 and f'pid {holder.pid}' in err
    assert sorted(os.listdir(workdir)) == before
  finally:
    holder.kill()
    holder.wait()
  status, err = main_inprocess([*args, f'--workdir={workdir}'], capsys)  # stale lock: taken over
  assert status == 0, err


def test_nan_eval_metric_stops_naming_the_step_and_checkpoint():
  loop._check_eval_finite(5, {'val/loss': 0.3, 'val/accuracy': 0.9}, None)
  with pytest.raises(state_lib.NonFiniteError, match=r'val/loss are NaN/Inf at step 7.*ckpt/5'):
    loop._check_eval_finite(7, {'val/loss': math.nan, 'val/accuracy': 0.9}, 'ckpt/5')
