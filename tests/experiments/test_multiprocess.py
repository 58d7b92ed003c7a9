"""Multi-process training on localhost: real processes, gloo collectives, a shared workdir.

Two `python -m experiments.main` processes with 4 fake CPU devices each
(coordinator on 127.0.0.1) train the same global batch as one process with
8 devices and must log the same metrics; killed with SIGKILL after a
committed checkpoint and rerun, they must end where the uninterrupted pair
ends. A held workdir and bad launch flags exit 2 with one line and write
nothing.
"""
from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from experiments import config_validation
from experiments import main
from experiments import metrics
from experiments import workdir_lock
from tests.experiments.test_checkpoint_recovery import truncate_files

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# The config.parallelism values run across 2 processes; every value the trainer offers
# belongs here ('pmap' is the default and is not passed on the command line).
MODES = ['pmap', 'jit']
ARGS = ['--config=experiments/configs/digits_baselines.py:model=mlp2',
        '--config.total_steps=120', '--config.total_epochs=0', '--config.log_every=10',
        '--config.eval_every=60', '--config.checkpoint_every=30',
        '--config.model.overrides.width=32']
TIMEOUT = 600  # seconds for a whole run, however loaded the machine


def _args(mode: str) -> list[str]:
  return ARGS if mode == 'pmap' else [*ARGS, f'--config.parallelism={mode}']


def _env(devices: int) -> dict[str, str]:
  """This environment with `devices` fake CPU devices and no cluster for JAX to detect."""
  env = {k: v for k, v in os.environ.items() if not k.startswith(('SLURM_', 'OMPI_'))}
  env.update(XLA_FLAGS=f'--xla_force_host_platform_device_count={devices}',
             JAX_PLATFORMS='cpu')
  return env


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def _command(args: list[str], workdir) -> list[str]:
  return [sys.executable, '-m', 'experiments.main', *args, f'--workdir={workdir}']


@contextlib.contextmanager
def _pair(args: list[str], workdir, logs):
  """Starts processes 0 and 1 of a 2-process run; kills whichever is left on the way out."""
  port = _free_port()
  procs = []
  try:
    for i in range(2):
      log = open(logs / f'{workdir.name}.{i}.log', 'w')  # files: a full pipe would block
      procs.append(subprocess.Popen(
          [*_command(args, workdir), f'--coordinator_address=127.0.0.1:{port}',
           '--num_processes=2', f'--process_id={i}'],
          cwd=ROOT, env=_env(4), stdout=log, stderr=subprocess.STDOUT))
      log.close()
    yield procs
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
        p.wait()


def _finish(procs, workdir, logs) -> list[str]:
  """Waits for both processes; asserts they succeeded; returns their outputs."""
  deadline = time.time() + TIMEOUT
  for p in procs:
    p.wait(timeout=max(1, deadline - time.time()))
  outs = [(logs / f'{workdir.name}.{i}.log').read_text() for i in range(2)]
  assert [p.returncode for p in procs] == [0, 0], outs
  return outs


def _comparable(records):
  return [{k: v for k, v in r.items() if k not in metrics.TIMING_KEYS} for r in records]


def _files(workdir) -> list[str]:
  """The workdir's entries, event files under one name (theirs holds a time and a pid)."""
  return sorted('events' if n.startswith('events.out.tfevents.') else n
                for n in os.listdir(workdir))


def _records(workdir):
  return metrics.read_jsonl(str(workdir / metrics.METRICS_FILE))


@pytest.fixture(scope='module')
def logs(tmp_path_factory):
  return tmp_path_factory.mktemp('logs')


@pytest.fixture(scope='module')
def one_by_eight(tmp_path_factory):
  """The reference: this process, with its 8 devices (tests/conftest.py), in pmap mode."""
  workdir = tmp_path_factory.mktemp('one') / 'run'
  assert main.main(['main', *ARGS, f'--workdir={workdir}']) == 0
  return workdir


@pytest.fixture(scope='module', params=MODES)
def two_by_four(request, tmp_path_factory, logs):
  """(mode, workdir, outputs, wall seconds) of an uninterrupted 2 × 4-device run."""
  workdir = tmp_path_factory.mktemp(f'two_{request.param}') / 'straight'
  start = time.time()
  with _pair(_args(request.param), workdir, logs) as procs:
    outs = _finish(procs, workdir, logs)
  return request.param, workdir, outs, time.time() - start


def test_two_processes_match_one(one_by_eight, two_by_four):
  mode, workdir, outs, wall = two_by_four
  print(f'2-process {mode} run: {wall:.1f} s wall')
  one, two = _comparable(_records(one_by_eight)), _comparable(_records(workdir))
  assert [r['step'] for r in two] == [r['step'] for r in one] == list(range(10, 121, 10))
  assert two[-1]['val/count'] == 360  # every eval digit once, across both processes
  for a, b in zip(one, two):
    assert a.keys() == b.keys()
    # Gloo sums the two processes' gradients in another order than one process does.
    np.testing.assert_allclose([b[k] for k in a], [a[k] for k in a], rtol=2e-5, atol=1e-6,
                               err_msg=f'step {a["step"]}')
  # Process 0 alone writes: one event file, the same files as the one-process run.
  assert _files(workdir) == _files(one_by_eight)
  assert 'workdir:' in outs[0] and 'done in' in outs[0]
  assert 'workdir:' not in outs[1] and 'done in' not in outs[1]


def test_sigkill_both_then_rerun_both_resumes(two_by_four, tmp_path, logs):
  """SIGKILL both once two checkpoints are committed, then tear (empty) the newest: the
  rerun's processes agree to set it aside, resume from the one before and end as the
  uninterrupted pair ended."""
  mode, straight, _, _ = two_by_four
  workdir = tmp_path / f'killed_{mode}'
  ckpts = workdir / 'checkpoints'
  with _pair(_args(mode), workdir, logs) as procs:
    deadline = time.time() + TIMEOUT
    while time.time() < deadline and all(p.poll() is None for p in procs):
      steps = [r['step'] for r in metrics.read_jsonl(str(workdir / metrics.METRICS_FILE))]
      # Saves are asynchronous: kill once step 60's checkpoint has been committed.
      if steps and steps[-1] >= 70 and (ckpts / '60').is_dir():
        break
      time.sleep(0.01)
    for p in procs:
      p.send_signal(signal.SIGKILL)
    for p in procs:
      p.wait()
    assert [p.returncode for p in procs] == [-signal.SIGKILL] * 2
  reached = _records(workdir)[-1]['step']
  assert 70 <= reached < 120, 'the run ended before it could be killed'
  *_, older, newest = sorted(int(s) for s in os.listdir(ckpts) if s.isdigit())
  truncate_files(str(ckpts / str(newest)))

  with _pair(_args(mode), workdir, logs) as procs:
    outs = _finish(procs, workdir, logs)
  assert f'{ckpts / str(newest)} is damaged' in outs[0], outs[0]
  assert f'Resuming from {ckpts / str(older)} ' in outs[0], outs[0]
  resumed = _comparable(_records(workdir))
  assert [r['step'] for r in resumed] == list(range(10, 121, 10))
  assert resumed == _comparable(_records(straight))  # exact: same processes, same sums


def test_a_held_workdir_stops_both_processes(tmp_path, logs):
  """Process 0 finds the lock taken; its peer learns it and stops too, rather than waiting."""
  workdir = tmp_path / 'held'
  saved, *_ = main.prepare(['main', *ARGS, f'--workdir={workdir}'])
  workdir.mkdir()
  config_validation.write_config(str(workdir), saved)  # a workdir this command resumes
  with workdir_lock.WorkdirLock(str(workdir)):
    with _pair(ARGS, workdir, logs) as procs:
      deadline = time.time() + TIMEOUT
      for p in procs:
        p.wait(timeout=max(1, deadline - time.time()))
  outs = [(logs / f'{workdir.name}.{i}.log').read_text() for i in range(2)]
  assert [p.returncode for p in procs] == [2, 2], outs
  assert all('is in use by a live run' in out for out in outs), outs
  assert sorted(os.listdir(workdir)) == ['.lock', 'config.json']


@pytest.mark.parametrize('flags,expected', [
    (['--coordinator_address=127.0.0.1:1234'],
     '--coordinator_address given without --num_processes, --process_id'),
    (['--num_processes=2', '--process_id=0'], 'given without --coordinator_address'),
    (['--coordinator_address=127.0.0.1:1234', '--num_processes=2', '--process_id=2'],
     '--process_id=2; valid: 0 to 1'),
    (['--coordinator_address=127.0.0.1:1234', '--num_processes=0', '--process_id=0'],
     '--num_processes=0; valid: an integer >= 1'),
    (['--coordinator_address=127.0.0.1', '--num_processes=2', '--process_id=0'],
     "--coordinator_address='127.0.0.1'; valid: host:port"),
    (['--coordinator_address=127.0.0.1:99999', '--num_processes=2', '--process_id=0'],
     'port 1-65535'),
    (['--coordinator_address=127.0.0.1:1234', '--num_processes=2', '--process_id=0',
      '--local_device_ids=0,0'], '--local_device_ids=0,0; valid: distinct device ids'),
])
def test_bad_launch_flags_exit_2_with_one_line(tmp_path, capsys, flags, expected):
  workdir = tmp_path / 'run'
  with pytest.raises(SystemExit) as exit_:
    main.main(['main', *ARGS, f'--workdir={workdir}', *flags])
  err = capsys.readouterr().err
  assert exit_.value.code == 2 and err.count('\n') == 1 and err.startswith('error: '), err
  assert expected in err, err
  assert not workdir.exists()


def test_distributed_without_a_cluster_exits_2(tmp_path):
  workdir = tmp_path / 'run'
  out = subprocess.run([*_command(ARGS, workdir), '--config.distributed=True'], cwd=ROOT,
                       env=_env(1), capture_output=True, text=True, timeout=TIMEOUT)
  assert out.returncode == 2 and out.stderr.count('\n') == 1, out.stderr
  assert 'jax.distributed.initialize failed' in out.stderr and 'Slurm' in out.stderr
  assert not workdir.exists()
