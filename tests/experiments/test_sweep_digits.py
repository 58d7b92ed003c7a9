"""A 2-stage coarse-to-fine sweep on digits with the real trainer, end to end.

Stage 0 is a 3-trial random sweep (log-uniform lr and λ, 4 steps each);
stage 1 runs 1 trial of 8 steps inside the range narrowed around stage 0's
best. Every trial is `python -m experiments.main` in its own sub-workdir.
"""
import csv
import json
import math
import os
import re
import subprocess
import sys

from experiments.sweeps import launcher

ROOT = launcher.PROJECT_ROOT
LINE = re.compile(r'^val acc: \d\.\d{6}, lr: \d\.\d{6}e[+-]\d\d, reg: \d\.\d{6}e[+-]\d\d, '
                  r'\(\d / 4\)$')


def test_coarse_to_fine_on_digits(tmp_path):
  env = dict(os.environ)
  env.pop('XLA_FLAGS', None)
  proc = subprocess.run(
      [sys.executable, '-m', 'experiments.sweep',
       '--config=experiments/configs/sweep_digits.py:method=coarse_to_fine,runlocal',
       f'--workdir={tmp_path}', '--workers=2'],
      cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stdout + proc.stderr
  lines = proc.stdout.splitlines()
  assert sum(bool(LINE.match(l)) for l in lines) == 4, proc.stdout
  assert any(l.startswith('stage 1: lr in [') for l in lines)
  rows = list(csv.DictReader(open(tmp_path / 'sweep.csv')))
  assert [r['state'] for r in rows] == ['COMPLETE'] * 4
  accs = [float(r['val/accuracy']) for r in rows]
  assert accs == sorted(accs, reverse=True) and max(accs) > 0.3
  stage0 = [r for r in rows if r['stage'] == '0']
  stage1 = [r for r in rows if r['stage'] == '1']
  assert len(stage0) == 3 and len(stage1) == 1
  assert {int(r['steps']) for r in stage0} == {4} and int(stage1[0]['steps']) == 8
  # Stage 1's lr lies within 0.25 × 4 decades of stage 0's best (log space).
  best = max(stage0, key=lambda r: float(r['val/accuracy']))
  assert abs(math.log10(float(stage1[0]['lr']) / float(best['lr']))) <= 1.0 + 1e-9
  # The trial really trained with its parameters: they are in its config.json.
  run = tmp_path / 'trials' / 's1_t0000'
  saved = json.load(open(run / 'config.json'))
  assert saved['optimizer']['learning_rate'] == float(stage1[0]['lr'])
  assert saved['reg']['strength'] == float(stage1[0]['reg'])
  assert saved['total_steps'] == 8 and 'sweep' not in saved
  assert (tmp_path / 'sweep.png').stat().st_size > 10_000
