"""experiments.compare: equal lr grid per arm, best lr over seeds, table/CSV/PNG.

Runs through the real command line and sweep engine with an instant stand-in
trainer (experiments.main's CLI; its score is a known function of optimizer,
learning rate and seed), so the bookkeeping is checked exactly; the digits
command with the real trainer is in the module docstring of compare.py.
"""
import csv
import os
import subprocess
import sys

import numpy as np
import pytest

from experiments import compare
from experiments.sweeps import launcher

ROOT = launcher.PROJECT_ROOT

FAKE_TRAINER = '''
import json, math, os, sys
from experiments.sweeps import space

args = dict(a[2:].split('=', 1) for a in sys.argv[1:])
cfg = space.load_config(args['config'])
os.makedirs(args['workdir'], exist_ok=True)
name, lr = cfg.optimizer.name, cfg.optimizer.get('learning_rate')
best = {'sgd': 0.1, 'adam': 0.01}.get(name)
peak = 0.9 - (0.0 if lr is None else 0.2 * abs(math.log10(lr / best)))
with open(os.path.join(args['workdir'], 'metrics.jsonl'), 'w') as f:
  for step in range(1, cfg.total_steps + 1):
    acc = peak * step / cfg.total_steps + 0.01 * cfg.seed
    f.write(json.dumps({'step': step, 'train/loss': 2.0 - acc, 'val/accuracy': acc,
                        'steps_per_sec': 4.0, 'full_batch': cfg.full_batch}) + '\\n')
'''

CONFIG = '''
import ml_collections

def get_config(arg=None):
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.optimizer = dict(name='sgd', learning_rate=0.1, momentum=0.9)
  c.schedule = dict(name='cosine', warmup_steps=2)
  c.total_steps = 4
  c.total_epochs = ml_collections.FieldReference(None, field_type=float)
  c.full_batch = False
  c.compare = dict(lr_grid=[0.01, 0.1], seeds=2, target=0.5)
  return c
'''


@pytest.fixture(scope='module')
def result(tmp_path_factory):
  tmp = tmp_path_factory.mktemp('cmp')
  (tmp / 'fake_trainer.py').write_text(FAKE_TRAINER)
  (tmp / 'cfg.py').write_text(CONFIG)
  env = dict(os.environ)
  env['PYTHONPATH'] = os.pathsep.join([str(tmp), ROOT])
  env.pop('XLA_FLAGS', None)
  proc = subprocess.run(
      [sys.executable, '-m', 'experiments.compare', f'--config={tmp / "cfg.py"}',
       f'--workdir={tmp / "w"}', '--optimizers=sgd,adam,lbfgs', '--trainer=fake_trainer',
       '--second_order_steps=4', '--workers=2'],
      cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stdout + proc.stderr
  return tmp / 'w', proc.stdout


def test_table_csv_and_png(result):
  workdir, out = result
  rows = {r['arm']: r for r in csv.DictReader(open(workdir / 'compare.csv'))}
  assert set(rows) == {'sgd', 'adam', 'lbfgs'}
  # Same lr grid for every first-order arm; the best lr is each one's optimum.
  assert float(rows['sgd']['best_lr']) == 0.1 and float(rows['adam']['best_lr']) == 0.01
  assert rows['sgd']['lr_grid_scores'].startswith('0.01:') and rows['lbfgs']['best_lr'] == ''
  # Seeds 0 and 1 at the best lr: 0.9 and 0.91 -> mean 0.905, std 0.005.
  for arm in ('sgd', 'adam', 'lbfgs'):
    assert int(rows[arm]['seeds']) == 2
    assert float(rows[arm]['val/accuracy_mean']) == pytest.approx(0.905)
    assert float(rows[arm]['val/accuracy_std']) == pytest.approx(0.005)
    # Reaches 0.5 at step 3 of 4 (0.9·3/4 + 0.01·seed), 2 steps after the
    # first log at 4 steps/s.
    assert float(rows[arm]['steps_to_target_mean']) == 3.0
    assert float(rows[arm]['wall_s_to_target_mean']) == pytest.approx(0.5)
  table = out[out.index('arm '):]
  assert '0.9050 ± 0.0050' in table and 'line search' in table
  assert (workdir / 'compare.png').stat().st_size > 20_000


def test_arms_are_reset_and_second_order_runs_full_batch(result):
  workdir, _ = result
  sgd = (workdir / 'sgd' / 'lr' / 'trials' / 's0_t0000.config.py').read_text()
  assert "'optimizer': {'name': 'sgd', 'learning_rate': 0.1}" in sgd  # momentum dropped
  lbfgs = (workdir / 'lbfgs' / 'lr' / 'trials' / 's0_t0000.config.py').read_text()
  assert "'full_batch': True" in lbfgs and "'learning_rate': None" in lbfgs
  seeds = (workdir / 'adam' / 'seeds' / 'trials' / 's0_t0000.config.py').read_text()
  assert "'optimizer.learning_rate': 0.01" in seeds and "'seed': 1" in seeds


def test_make_arms_validates_names():
  import ml_collections  # pylint: disable=import-outside-toplevel
  cfg = ml_collections.ConfigDict({'optimizer': {'name': 'momentum'}, 'total_steps': 200,
                                   'schedule': {'name': 'constant', 'warmup_steps': None}})
  arms = compare.make_arms(None, ['constant', 'cosine', 'warmup_cosine'], None, cfg, 5)
  assert [a.name for a in arms] == ['constant', 'cosine', 'warmup_cosine']
  assert arms[1].overrides == {'schedule.name': 'cosine'} and arms[1].sweep_lr
  assert arms[2].overrides == {'schedule.name': 'warmup_cosine', 'schedule.warmup_steps': 10}
  with pytest.raises(ValueError, match="unknown \\['adamm'\\]"):
    compare.make_arms(['sgd', 'adamm'], None, None, cfg, 5)
  with pytest.raises(ValueError, match='exactly one of'):
    compare.make_arms(['sgd'], ['cosine'], None, cfg, 5)


def test_wall_time_from_steps_per_sec():
  recs = compare.with_wall_time([{'step': 10, 'steps_per_sec': 5.0},
                                 {'step': 30, 'steps_per_sec': 10.0}])
  assert [r['wall_time'] for r in recs] == [0.0, 2.0]  # since the first log
  assert compare.to_target(recs + [{'step': 31, 'val/accuracy': 0.9, 'wall_time': 4.1}],
                           'val/accuracy', 0.8, 'maximize') == (31, 4.1)
  own = compare.with_wall_time([{'step': 5, 'wall_time': 7.0}, {'step': 9, 'wall_time': 8.5}])
  assert np.allclose([r['wall_time'] for r in own], [0.0, 1.5])
