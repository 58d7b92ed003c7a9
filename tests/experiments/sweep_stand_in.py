"""A stand-in trainer and sweep config for the sweep engine tests.

The stand-in has experiments.main's command line (`--config=FILE
--workdir=DIR`), writes metrics.jsonl, checkpoints its step and resumes from
it (each start appends its first step to runs.txt), fails like the trainer
does (exit 1, one line) when the learning rate is above `fail_above`, and
raises (a traceback) when it is below `raise_below`. Engine behaviour is
thereby tested without paying a JAX start-up per trial.
"""
import os
import re
import sys

import optuna

from experiments.sweeps import launcher

ROOT = launcher.PROJECT_ROOT

FAKE_TRAINER = '''
import json, math, os, sys, time
from experiments.sweeps import space

args = dict(a[2:].split('=', 1) for a in sys.argv[1:])
cfg = space.load_config(args['config'])
wd = args['workdir']
os.makedirs(wd, exist_ok=True)
lr = cfg.optimizer.learning_rate
if lr > cfg.fail_above:
  print('error: loss is nan at step 3 (last good checkpoint: none)', file=sys.stderr)
  sys.exit(1)
if lr < cfg.raise_below:
  raise RuntimeError(f'lr={lr:.3g} is below raise_below')
ck = os.path.join(wd, 'ckpt.json')
start = json.load(open(ck))['step'] if os.path.exists(ck) else 0
with open(os.path.join(wd, 'runs.txt'), 'a') as f:
  f.write(f'{start}\\n')
with open(os.path.join(wd, 'metrics.jsonl'), 'a') as f:
  for step in range(start + 1, cfg.total_steps + 1):
    time.sleep(cfg.sleep)
    acc = math.exp(-(math.log10(lr) + 2) ** 2) - cfg.reg.strength
    f.write(json.dumps({'step': step, 'train/loss': 1 - acc, 'val/accuracy': acc}) + '\\n')
    f.flush()
    json.dump({'step': step}, open(ck + '.tmp', 'w'))
    os.replace(ck + '.tmp', ck)
'''

CONFIG = '''
import ml_collections
from experiments.sweeps import space

def get_config(arg=None):
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.optimizer = dict(name='sgd', learning_rate=0.1)
  c.reg = dict(kind='l2', strength=0.0)
  c.total_steps = 3
  c.sleep = 0.0
  c.fail_above = 100.0
  c.raise_below = 0.0
  c.sweep = dict(method='random', num_trials=3, metric='val/accuracy',
                 direction='maximize',
                 parameters=dict(lr=space.log_uniform('optimizer.learning_rate', 1e-4, 10.0),
                                 reg=space.uniform('reg.strength', 0.0, 0.1)))
  return c
'''



LINE = re.compile(r'^(val acc: -?\d+\.\d{6}|FAILED \(.+\)), lr: \d\.\d{6}e[+-]\d\d, '
                  r'reg: \d\.\d{6}e[+-]\d\d, \(\d+ / \d+\)$')


def write(tmp_path):
  """Writes fake_trainer.py and cfg.py into `tmp_path`; returns it."""
  (tmp_path / 'fake_trainer.py').write_text(FAKE_TRAINER)
  (tmp_path / 'cfg.py').write_text(CONFIG)
  return tmp_path


def env(tmp_path):
  """The environment of a sweep subprocess that finds the stand-in."""
  out = dict(os.environ)
  out['PYTHONPATH'] = os.pathsep.join([str(tmp_path), ROOT])
  out.pop('XLA_FLAGS', None)
  return out


def cli(files, workdir, *extra):
  return [sys.executable, '-m', 'experiments.sweep', f'--config={files / "cfg.py"}',
          f'--workdir={workdir}', '--trainer=fake_trainer', *extra]


def trials(storage_url, study_name='sweep'):
  """(number, state name, key, user attrs) of every keyed trial, by number."""
  storage = optuna.storages.RDBStorage(
      'postgresql+psycopg://' + storage_url[len('postgresql://'):]
      if storage_url.startswith('postgresql://') else storage_url)
  study = optuna.load_study(study_name=study_name, storage=storage)
  return [(t.number, t.state.name, t.user_attrs['key'], t.user_attrs)
          for t in study.get_trials() if 'key' in t.user_attrs]
