"""Sweeps whose workers share a real PostgreSQL server (tests/postgresql.py).

Each worker process gets its own workdir, as a worker on another machine
would: only the database is shared. The stand-in trainer
(tests/experiments/sweep_stand_in.py) keeps the trials instant; the grid
comparison with SQLite runs the real trainer on digits.
"""
import csv
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.experiments import sweep_stand_in as stand_in


@pytest.fixture()
def files(tmp_path):
  return stand_in.write(tmp_path)


def _runs(workdir, key):
  """The start steps of every run of `key` in `workdir` ([] if it never ran there)."""
  path = workdir / 'trials' / key.replace('/', '_') / 'runs.txt'
  return [int(l) for l in path.read_text().split()] if path.exists() else []


def _canonical(rows):
  """key -> (state, attrs) of its lowest-numbered trial neither pruned as a
  duplicate nor abandoned by a dead worker (FAIL without a fail_reason)."""
  out = {}
  for _, state, key, attrs in rows:
    abandoned = state == 'FAIL' and 'fail_reason' not in attrs
    if key not in out and 'duplicate_of' not in attrs and not abandoned:
      out[key] = (state, attrs)
  return out


def test_two_workers_on_two_workdirs_run_each_trial_exactly_once(files, postgresql_url):
  env = stand_in.env(files)
  workdirs = [files / 'host_a', files / 'host_b']
  args = ['--config.sweep.num_trials=6', '--config.sleep=0.5', f'--storage={postgresql_url}']
  procs = [subprocess.Popen(stand_in.cli(files, w, *args), cwd=stand_in.ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
           for w in workdirs]
  outs = [p.communicate(timeout=180)[0] for p in procs]
  assert all(p.returncode == 0 for p in procs), outs
  keys = [f's0/t000{i}' for i in range(6)]
  canonical = _canonical(stand_in.trials(postgresql_url))
  assert sorted(canonical) == keys
  assert all(state == 'COMPLETE' for state, _ in canonical.values())
  for key in keys:  # one run of each trial, on one of the two hosts
    assert sorted(_runs(workdirs[0], key) + _runs(workdirs[1], key)) == [0], key
  ran = [sum(bool(_runs(w, k)) for k in keys) for w in workdirs]
  assert sum(ran) == 6 and min(ran) >= 1, ran  # both hosts worked
  finished = [sum(bool(stand_in.LINE.match(l)) for l in o.splitlines()) for o in outs]
  assert sum(finished) == 6, outs


def _wait(predicate, timeout_s, what):
  deadline = time.time() + timeout_s
  while time.time() < deadline:
    if predicate():
      return
    time.sleep(0.05)
  raise AssertionError(f'timed out waiting for {what}')


def _step(workdir, key):
  path = workdir / 'trials' / key.replace('/', '_') / 'ckpt.json'
  try:
    return json.loads(path.read_text())['step']
  except (OSError, ValueError):
    return 0


@pytest.mark.parametrize('backend', ['postgresql', 'sqlite'])
def test_a_worker_killed_mid_trial_loses_no_other_result(files, backend, request):
  """Worker A is SIGKILLed in the middle of a trial after finishing another.
  PostgreSQL: A's heartbeat stops and, `--stale_after` seconds later, Optuna
  fails the trial and survivor B re-runs it. SQLite (one host): B sees A's pid
  gone at once. Either way A's finished trial is kept, not rerun."""
  if backend == 'postgresql':
    url = request.getfixturevalue('postgresql_url')
    lapse = 'no heartbeat for 3 s'
  else:
    url = f'sqlite:///{files / "shared.db"}'
    lapse = 'is gone'
  env = stand_in.env(files)
  a, b = files / 'host_a', files / 'host_b'
  keys = [f's0/t000{i}' for i in range(5)]
  args = ['--config.sweep.num_trials=5', '--config.sleep=0.25', '--config.total_steps=8',
          f'--storage={url}', '--heartbeat_s=1', '--stale_after=3']
  worker_a = subprocess.Popen(stand_in.cli(files, a, *args), cwd=stand_in.ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  worker_b = None
  try:
    # B joins once A has finished a trial: started together, a slow start of A
    # under load could leave B all the trials and A none to be killed in.
    _wait(lambda: any(_step(a, k) == 8 for k in keys), 120, 'worker A to finish a trial')
    worker_b = subprocess.Popen(stand_in.cli(files, b, *args), cwd=stand_in.ROOT, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    # A is at step >= 2 of 8 in another trial.
    _wait(lambda: any(2 <= _step(a, k) < 8 for k in keys), 120, 'worker A mid-trial')
    worker_a.send_signal(signal.SIGKILL)
    worker_a.wait()
    done_by_a = [k for k in keys if _step(a, k) == 8]
    killed = [k for k in keys if 0 < _step(a, k) < 8]
    assert len(killed) == 1, [(k, _step(a, k)) for k in keys]
    killed_at = _step(a, killed[0])
    out = worker_b.communicate(timeout=180)[0]
  finally:
    for p in (worker_a, worker_b):
      if p is not None and p.poll() is None:
        p.kill()
        p.wait()
  assert worker_b.returncode == 0, out
  assert _step(a, killed[0]) == killed_at  # the trial died with its worker
  assert f'trial {killed[0]} (#' in out and lapse in out, out
  rows = stand_in.trials(url)
  canonical = _canonical(rows)
  assert sorted(canonical) == keys
  assert all(state == 'COMPLETE' for state, _ in canonical.values()), canonical
  for k in done_by_a:  # A's results are kept: recorded from A's workdir, not rerun by B
    assert canonical[k][1]['workdir'].startswith(str(a)) and _runs(b, k) == [], k
    assert _runs(a, k) == [0]
  # The killed trial: abandoned on A (FAIL, no reason), then run once by B.
  states = [(s, 'fail_reason' in at) for _, s, k, at in rows
            if k == killed[0] and 'duplicate_of' not in at]
  assert states == [('FAIL', False), ('COMPLETE', False)], states
  assert canonical[killed[0]][1]['workdir'].startswith(str(b)) and _runs(b, killed[0]) == [0]
  for k in keys:  # every other trial ran exactly once, on one host
    if k != killed[0]:
      assert sorted(_runs(a, k) + _runs(b, k)) == [0], k


def test_a_second_copy_of_the_plan_takes_over_an_abandoned_trial(files, postgresql_url,
                                                                 monkeypatch):
  """Two hosts that plan a stage at once queue every key twice (duplicates are
  pruned when claimed). When the first copy of a key is abandoned, its second
  copy becomes the key's trial: it runs once, and the worker says which
  abandoned trial it replaces."""
  from experiments.sweeps import engine, space, spec as spec_lib  # pylint: disable=import-outside-toplevel
  from optuna.trial import TrialState  # pylint: disable=import-outside-toplevel
  monkeypatch.setenv('PYTHONPATH', os.pathsep.join([str(files), stand_in.ROOT]))
  config = space.load_config(str(files / 'cfg.py'))
  space.set_path(config, 'sweep.num_trials', 3)
  lines = []
  sweep = engine.Sweep(spec_lib.parse_sweep(config), workdir=str(files / 'host_b'),
                       config_path=str(files / 'cfg.py'), config_arg=None, cli_overrides={},
                       storage_url=postgresql_url, trainer='fake_trainer', poll_s=0.2,
                       log=lines.append)
  study = sweep.open()
  sweep._enqueue_stage(0, study)  # pylint: disable=protected-access
  for t in study.get_trials():  # the other host's copy of the plan
    study.enqueue_trial(dict(t.system_attrs['fixed_params']), user_attrs=dict(t.user_attrs))
  storage = study._storage  # pylint: disable=protected-access
  first = study.get_trials()[1]  # s0/t0001, claimed on a host whose heartbeat then lapsed
  storage.set_trial_state_values(first._trial_id, TrialState.RUNNING)  # pylint: disable=protected-access
  storage.set_trial_state_values(first._trial_id, TrialState.FAIL)  # pylint: disable=protected-access
  results = sweep.run(workers=1)
  assert ('trial s0/t0001 (#1) was left RUNNING (no heartbeat for 120 s); '
          'its queued copy #4 runs it') in lines, lines
  assert sorted((r.key, r.state) for r in results) == [
      (f's0/t000{i}', 'COMPLETE') for i in range(3)]
  for i in range(3):
    assert _runs(files / 'host_b', f's0/t000{i}') == [0]
  rows = stand_in.trials(postgresql_url)
  assert [(n, s) for n, s, k, at in rows if k == 's0/t0001' and 'duplicate_of' not in at] == [
      (1, 'FAIL'), (4, 'COMPLETE')]
  assert [at.get('requeued_from') for n, _, _, at in rows if n == 4] == [1]


def _grid_rows(workdir):
  """sweep.csv without what legitimately differs between two runs: the
  trial number, wall time and workdir."""
  rows = list(csv.DictReader(open(workdir / 'sweep.csv')))
  return [{k: v for k, v in r.items() if k not in ('number', 'wall_s', 'workdir')}
          for r in rows]


@pytest.mark.slow
def test_grid_sweep_gives_the_same_table_as_sqlite(tmp_path, postgresql_url):
  env = dict(os.environ)
  env.pop('XLA_FLAGS', None)
  tables = {}
  for name, extra in [('sqlite', []), ('postgresql', [f'--storage={postgresql_url}'])]:
    proc = subprocess.run(
        [sys.executable, '-m', 'experiments.sweep',
         '--config=experiments/configs/sweep_digits.py:method=grid,runlocal',
         f'--workdir={tmp_path / name}', '--workers=2', '--config.total_steps=4', *extra],
        cwd=stand_in.ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    tables[name] = _grid_rows(tmp_path / name)
  assert len(tables['sqlite']) == 4  # 2 × 2 grid of lr and reg
  assert all(r['state'] == 'COMPLETE' and r['steps'] == '4' for r in tables['sqlite'])
  assert tables['postgresql'] == tables['sqlite']
