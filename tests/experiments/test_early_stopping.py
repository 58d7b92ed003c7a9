"""Early stopping: stops after `patience` evaluations without improvement, keeps the best, resumes."""
from __future__ import annotations

import json
import math

import pytest

from experiments import early_stopping


def _drive(es, values, state=None):
  state = es.init() if state is None else state
  log = []
  for step, v in values:
    state, improved, stop = es.update(state, v, step)
    log.append((improved, stop))
    if stop:
      break
  return state, log


def test_max_mode_stops_after_patience_and_keeps_best():
  es = early_stopping.EarlyStopping('val/accuracy', mode='max', patience=3, min_delta=0.01)
  values = [(100, 0.50), (200, 0.60), (300, 0.605), (400, 0.59), (500, 0.609), (600, 0.9)]
  state, log = _drive(es, values)
  # 0.605 and 0.609 are within min_delta of 0.60: not improvements.
  assert log == [(True, False), (True, False), (False, False), (False, False), (False, True)]
  assert state == {'best': 0.60, 'best_step': 200, 'bad_evals': 3, 'evals': 5}


def test_min_mode_and_reset_of_patience():
  es = early_stopping.EarlyStopping('val/loss', mode='min', patience=2)
  state, log = _drive(es, [(1, 2.0), (2, 2.5), (3, 1.0), (4, 1.0), (5, 0.99), (6, 3.0), (7, 3.0)])
  assert [i for i, _ in log] == [True, False, True, False, True, False, False]
  assert log[-1][1] and state['best'] == 0.99 and state['best_step'] == 5


def test_nan_never_improves():
  es = early_stopping.EarlyStopping('val/loss', mode='min', patience=1)
  state, improved, stop = es.update(es.init(), math.nan, 1)
  assert not improved and stop and state['best'] is None


def test_resume_from_json_equals_uninterrupted():
  es = early_stopping.EarlyStopping('val/accuracy', patience=4)
  values = [(s, v) for s, v in enumerate([0.1, 0.3, 0.2, 0.35, 0.3, 0.3, 0.34, 0.36, 0.2,
                                          0.2, 0.2, 0.2])]
  full, full_log = _drive(es, values)
  half, half_log = _drive(es, values[:5])
  restored = json.loads(json.dumps(half))  # what a checkpoint writes and reads back
  rest, rest_log = _drive(es, values[5:], restored)
  assert rest == full and half_log + rest_log == full_log


def test_config_and_bad_values():
  cfg = early_stopping.default_config()
  assert early_stopping.EarlyStopping.from_config(cfg) is None
  cfg.metric = 'val/loss'
  cfg.mode = 'min'
  assert early_stopping.EarlyStopping.from_config(cfg).mode == 'min'
  for kw, key in ((dict(mode='up'), 'mode'), (dict(patience=0), 'patience'),
                  (dict(patience=2.5), 'patience'), (dict(min_delta=-1.0), 'min_delta'),
                  (dict(metric=''), 'metric')):
    args = {'metric': 'val/loss', **kw}
    with pytest.raises(ValueError, match=f'early_stopping.{key}') as e:
      early_stopping.EarlyStopping(**args)
    assert '\n' not in str(e.value)
