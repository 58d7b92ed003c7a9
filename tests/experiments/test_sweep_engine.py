"""The sweep engine's guarantees on SQLite, with an instant stand-in trainer
(tests/experiments/sweep_stand_in.py): failures, kill + rerun, concurrent
workers. The real trainer runs in test_sweep_digits.py; workers sharing a
PostgreSQL server in test_sweep_postgresql.py.
"""
import csv
import json
import os
import re
import signal
import subprocess
import time

import ml_collections
import pytest

from experiments.sweeps import engine
from experiments.sweeps import launcher
from experiments.sweeps import report
from experiments.sweeps import space
from experiments.sweeps import spec as spec_lib
from tests.experiments import sweep_stand_in as stand_in

ROOT = launcher.PROJECT_ROOT


@pytest.fixture()
def files(tmp_path, monkeypatch):
  monkeypatch.setenv('PYTHONPATH', os.pathsep.join([str(tmp_path), ROOT]))
  return stand_in.write(tmp_path)


def _sweep(files, workdir, lines, **overrides):
  config = space.load_config(str(files / 'cfg.py'))
  for path, value in overrides.items():
    space.set_path(config, path, value)
  spec = spec_lib.parse_sweep(config)
  cli = {k: v for k, v in overrides.items() if not k.startswith('sweep.')}
  return spec, engine.Sweep(spec, workdir=str(workdir), config_path=str(files / 'cfg.py'),
                            config_arg=None, cli_overrides=cli, trainer='fake_trainer',
                            poll_s=0.2, log=lines.append)


def _trial_states(db):
  return [(n, s, k) for n, s, k, _ in stand_in.trials(f'sqlite:///{db}')]


def test_random_sweep_records_a_failing_trial_and_goes_on(files):
  lines = []
  # lr ~ log-U(1e-4, 10) with seed 0 draws 0.153, 1.6e-4, 1.165, 0.108: the third fails.
  spec, sweep = _sweep(files, files / 'w', lines, fail_above=1.0)
  results = sweep.run(workers=2)
  assert len(lines) == 3 and all(stand_in.LINE.match(l) for l in lines), lines
  assert sorted(l[-7:] for l in lines) == [f'({i} / 3)' for i in range(1, 4)]
  by_key = {r.key: r for r in results}
  assert sorted(by_key) == [f's0/t000{i}' for i in range(3)]
  failed = [r for r in results if r.state == 'FAIL']
  assert len(failed) == 1 and failed[0].params['lr'] > 1.0
  assert 'loss is nan at step 3' in failed[0].reason
  for r in results:
    if r.state == 'COMPLETE':
      want = 2.718281828 ** (-(__import__('math').log10(r.params['lr']) + 2) ** 2) \
          - r.params['reg']
      assert r.value == pytest.approx(want, rel=1e-9)
  table = report.write_report(spec, results, sweep.workdir)
  rows = list(csv.DictReader(open(files / 'w' / 'sweep.csv')))
  values = [float(r['val/accuracy']) for r in rows if r['state'] == 'COMPLETE']
  assert values == sorted(values, reverse=True) and len(rows) == 3
  assert rows[-1]['state'] == 'FAIL'
  assert table.splitlines()[2].split()[1] == rows[0]['trial']
  assert (files / 'w' / 'sweep.png').stat().st_size > 10_000
  # Rerunning a finished sweep runs nothing; extending it runs only the new trial.
  lines.clear()
  assert len(_sweep(files, files / 'w', lines, fail_above=1.0)[1].run()) == 3
  assert lines == []
  more = _sweep(files, files / 'w', lines, fail_above=1.0, **{'sweep.num_trials': 4})[1].run()
  assert len(more) == 4 and len(lines) == 1 and lines[0].endswith('(4 / 4)')
  for key in by_key:
    runs = files / 'w' / 'trials' / key.replace('/', '_') / 'runs.txt'
    assert not runs.exists() or runs.read_text() == '0\n'


def test_a_trial_that_raises_is_recorded_in_one_line_and_the_sweep_goes_on(files):
  lines = []
  # Seed 0 draws lr 0.153, 1.6e-4, 1.165: the second raises a RuntimeError.
  _, sweep = _sweep(files, files / 'r', lines, raise_below=1e-3)
  results = {r.key: r for r in sweep.run()}
  assert [results[k].state for k in sorted(results)] == ['COMPLETE', 'FAIL', 'COMPLETE']
  reason = results['s0/t0001'].reason
  assert reason.startswith('exit 1: RuntimeError: lr=0.00016') and '\n' not in reason, reason
  assert sum(l.startswith('FAILED (exit 1: RuntimeError') for l in lines) == 1, lines
  rows = _trial_states(files / 'r' / 'sweep.db')
  assert [s for _, s, _ in rows] == ['COMPLETE', 'FAIL', 'COMPLETE']


def test_coarse_to_fine_narrows_in_log_space(files):
  lines = []
  spec, sweep = _sweep(files, files / 'c', lines, **{
      'sweep.method': 'coarse_to_fine',
      'sweep.stages': [dict(num_trials=3, budget={'total_steps': 1}, top_k=2),
                       dict(num_trials=2, top_k=1)]})
  results = sweep.run(workers=2)
  assert len(results) == 5 and lines[3].startswith('stage 1: lr in ['), lines
  s0 = sorted((r for r in results if r.stage == 0), key=lambda r: -r.value)
  s1 = [r for r in results if r.stage == 1]
  assert all(r.steps == 1 for r in s0) and all(r.steps == 3 for r in s1)
  import math  # pylint: disable=import-outside-toplevel
  logs = [math.log10(r.params['lr']) for r in s0[:2]]
  lo, hi = min(logs) - 0.25 * 5, max(logs) + 0.25 * 5  # margin 0.25 of 5 decades
  for r in s1:
    assert max(lo, -4) - 1e-9 <= math.log10(r.params['lr']) <= min(hi, 1) + 1e-9
  narrowed = sweep.stage_params(1, sweep.open())
  assert math.log10(narrowed[0].high) - math.log10(narrowed[0].low) < 5


def test_space_validation_messages():
  config = ml_collections.ConfigDict({'optimizer': {'learning_rate': 0.1},
                                      'batch_size': 32, 'model': {'overrides': {}}})
  bad = [
      (dict(x=space.log_uniform('optimizer.lr', 1e-3, 1.0)), "unknown config path 'optimizer.lr'"),
      (dict(x=space.log_uniform('optimizer.learning_rate', 0.0, 1.0)), 'includes values <= 0'),
      (dict(x=space.uniform('optimizer.learning_rate', 1.0, 1.0)), 'empty or inverted'),
      (dict(x=space.uniform('optimizer.learning_rate', 2.0, 1.0)), 'empty or inverted'),
      (dict(x=space.uniform('batch_size', 2.0, 8.0)), 'use the int distribution'),
      (dict(x=space.choice('batch_size', [])), 'non-empty list'),
      (dict(x=dict(path='batch_size', distribution='normal')), "distribution='normal'"),
  ]
  for params, message in bad:
    with pytest.raises(ValueError, match=re.escape(message)):
      space.parse_space(params, config)
  ok = space.parse_space(dict(w=space.choice('model.overrides.window_size', [2, 4]),
                              b=space.integer('batch_size', 8, 64, log=True)), config)
  assert [p.name for p in ok] == ['w', 'b'] and ok[1].log
  assert len(space.grid(ok, 3)) == 6


def test_bad_input_exits_2_before_any_trial(files):
  env = stand_in.env(files)
  for extra, message in [
      (['--config.sweep.parameters.lr.path=optimizer.lr'], "unknown config path 'optimizer.lr'"),
      (['--storage=mysql://nobody@127.0.0.1:1/none'], 'cannot open the Optuna storage'),
      (['--storage=postgresql://nobody@127.0.0.1:1/none'], 'cannot open the Optuna storage'),
      (['--heartbeat_s=10', '--stale_after=5'], '--stale_after=5: expected more than')]:
    proc = subprocess.run(stand_in.cli(files, files / 'bad', *extra), cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count('\n') == 1 and message in proc.stderr, proc.stderr
    assert not (files / 'bad' / 'trials').exists()


def test_two_worker_processes_run_each_trial_exactly_once(files):
  env = stand_in.env(files)
  workdir = files / 'two'
  args = ['--config.sweep.num_trials=4', '--config.sleep=0.3']
  procs = [subprocess.Popen(stand_in.cli(files, workdir, *args), cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
           for _ in range(2)]
  outs = [p.communicate(timeout=120)[0] for p in procs]
  assert all(p.returncode == 0 for p in procs), outs
  states = _trial_states(str(workdir / 'sweep.db'))
  assert sorted(k for _, _, k in states) == [f's0/t000{i}' for i in range(4)], states
  assert all(s == 'COMPLETE' for _, s, _ in states)
  for i in range(4):
    assert (workdir / 'trials' / f's0_t000{i}' / 'runs.txt').read_text() == '0\n'
  finished = [sum(bool(stand_in.LINE.match(l)) for l in o.splitlines()) for o in outs]
  assert sum(finished) == 4, outs


def test_kill_and_rerun_redoes_nothing_and_resumes(files):
  env = stand_in.env(files)
  workdir = files / 'kill'
  args = ['--config.sweep.num_trials=3', '--config.sleep=0.25', '--config.total_steps=8']
  proc = subprocess.Popen(stand_in.cli(files, workdir, *args), cwd=ROOT, env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                          start_new_session=True)
  deadline = time.time() + 90
  second = workdir / 'trials' / 's0_t0001' / 'ckpt.json'
  while time.time() < deadline:
    if second.exists() and json.loads(second.read_text())['step'] >= 2:
      break
    time.sleep(0.1)
  os.kill(proc.pid, signal.SIGKILL)
  proc.wait()
  time.sleep(0.3)
  killed_at = json.loads(second.read_text())['step']
  assert 2 <= killed_at < 8
  states = dict((k, s) for _, s, k in _trial_states(str(workdir / 'sweep.db')))
  assert states == {'s0/t0000': 'COMPLETE', 's0/t0001': 'RUNNING', 's0/t0002': 'WAITING'}
  time.sleep(0.6)  # the orphaned trial died with its worker: no more steps
  assert json.loads(second.read_text())['step'] == killed_at

  rerun = subprocess.run(stand_in.cli(files, workdir, *args), cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=120)
  assert rerun.returncode == 0, rerun.stdout + rerun.stderr
  assert 'trial s0/t0001 (#1) was left RUNNING' in rerun.stdout
  assert sum(bool(stand_in.LINE.match(l)) for l in rerun.stdout.splitlines()) == 2
  trials = workdir / 'trials'
  assert (trials / 's0_t0000' / 'runs.txt').read_text() == '0\n'  # not redone
  assert (trials / 's0_t0001' / 'runs.txt').read_text() == f'0\n{killed_at}\n'  # resumed
  steps = [json.loads(l)['step'] for l in open(trials / 's0_t0001' / 'metrics.jsonl')]
  assert sorted(set(steps)) == list(range(1, 9)) and steps[-1] == 8
  rows = _trial_states(str(workdir / 'sweep.db'))
  assert [(k, s) for _, s, k in rows] == [('s0/t0000', 'COMPLETE'), ('s0/t0001', 'FAIL'),
                                          ('s0/t0002', 'COMPLETE'), ('s0/t0001', 'COMPLETE')]
