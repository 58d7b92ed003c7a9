"""The recipes in the trainer: Mixup/CutMix in the step, EMA/Polyak evals, early stopping.

In-process on the 8 fake CPU devices of tests/conftest.py; tiny MLP runs on
the digits (tests/experiments/test_train.py's `tiny_config`).
"""
from __future__ import annotations

import json
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from experiments import checkpointing
from experiments import metrics
from experiments import train
from experiments.trainer import stopping
from tests.experiments.test_train import curve
from tests.experiments.test_train import run
from tests.experiments.test_train import tiny_config

MIX = {'mixup.mixup_alpha': 0.8, 'mixup.cutmix_alpha': 1.0, 'mixup.mode': 'elem',
       'label_smoothing': 0.1}


def comparable(records):
  return [{k: v for k, v in r.items() if k not in metrics.TIMING_KEYS} for r in records]


# --------------------------------------------------------------------------- mixing

def test_classification_takes_soft_targets_without_smoothing_them_again():
  from experiments import losses, tasks  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  logits = jnp.asarray(rng.normal(size=(4, 10)), jnp.float32)
  soft = jax.nn.softmax(jnp.asarray(rng.normal(size=(4, 10)) * 3, jnp.float32))
  task = tasks.Classification(10, label_smoothing=0.1)
  np.testing.assert_allclose(task.losses(logits, soft), losses.softmax_xent(logits, soft),
                             rtol=1e-6)
  hits = task.train_metrics(logits, soft)['accuracy']
  np.testing.assert_array_equal(hits, np.argmax(logits, -1) == np.argmax(soft, -1))


def test_mixed_step_is_the_same_on_eight_devices_one_device_and_with_accumulation(tmp_path):
  """The same global batch mixes to the same targets: 8 devices = 1 device = 1 device × 4
  micro-batches (train loss, accuracy against argmax targets, gradients, evals)."""
  config = tiny_config(total_steps=6, eval_every=6, checkpoint_every=0, **MIX)
  eight = run(config, tmp_path / 'eight')
  one = run(config, tmp_path / 'one', devices=jax.local_devices()[:1])
  accum = run(tiny_config(total_steps=6, eval_every=6, checkpoint_every=0, accum_steps=4, **MIX),
              tmp_path / 'accum', devices=jax.local_devices()[:1])
  for key in ('train/loss', 'train/accuracy', 'grad_norm', 'param_norm', 'val/loss'):
    np.testing.assert_allclose(curve(eight, key), curve(one, key), atol=1e-5, err_msg=key)
    np.testing.assert_allclose(curve(accum, key), curve(one, key), atol=1e-5, err_msg=key)
  plain = run(tiny_config(total_steps=6, eval_every=6, checkpoint_every=0,
                          label_smoothing=0.1), tmp_path / 'plain')
  # The step does mix: same data and seed, other inputs and targets, another loss.
  assert np.abs(curve(eight, 'train/loss') - curve(plain, 'train/loss')).min() > 1e-3


def test_label_smoothing_is_folded_in_once(tmp_path):
  """Mixing on with prob 0: the targets are the smoothed one-hots, so the run equals the
  unmixed run with the same label smoothing (applied once, not twice)."""
  base = dict(total_steps=4, eval_every=4, checkpoint_every=0, label_smoothing=0.2)
  plain = run(tiny_config(**base), tmp_path / 'plain')
  unmixed = run(tiny_config(**base, **{'mixup.mixup_alpha': 0.8, 'mixup.prob': 0.0}),
                tmp_path / 'unmixed')
  for key in ('train/loss', 'train/accuracy', 'param_norm', 'val/loss'):
    np.testing.assert_allclose(curve(unmixed, key), curve(plain, key), atol=1e-6, err_msg=key)


def test_mixing_in_bfloat16_follows_float32(tmp_path):
  """bf16 compute with mixing and accumulation: the same mixed losses to bf16 precision."""
  base = dict(total_steps=4, eval_every=4, checkpoint_every=0, accum_steps=2, **MIX)
  bf16 = run(tiny_config(dtype='bfloat16', **base), tmp_path / 'bf16')
  f32 = run(tiny_config(**base), tmp_path / 'f32')
  np.testing.assert_allclose(curve(bf16, 'train/loss'), curve(f32, 'train/loss'), rtol=3e-2)


@pytest.mark.parametrize('key, value, match', [
    ('mixup.mixup_alpha', -0.1, 'mixup.mixup_alpha'),
    ('mixup.prob', 1.5, 'mixup.prob'),
    ('mixup.switch_prob', -0.5, 'mixup.switch_prob'),
    ('mixup.mode', 'row', 'mixup.mode'),
    ('ema.decay', 1.5, 'ema'),
    ('polyak.start_step', -1, 'polyak'),
    ('early_stopping.mode', 'up', 'early_stopping.mode'),
    ('early_stopping.patience', 0, 'early_stopping.patience'),
])
def test_bad_recipe_values_fail_in_build(key, value, match):
  overrides = {key: value}
  if key.startswith('early_stopping'):
    overrides['early_stopping.metric'] = 'val/accuracy'
  with pytest.raises(ValueError, match=match) as e:
    train.build(tiny_config(**overrides))
  assert '\n' not in str(e.value)


def test_early_stopping_metric_must_be_evaluated():
  with pytest.raises(ValueError, match='val_ema/<name>|ema.decay'):
    train.build(tiny_config(**{'early_stopping.metric': 'val_ema/accuracy'}))
  with pytest.raises(ValueError, match='even'):
    train.build(tiny_config(batch_size=25, **{'mixup.cutmix_alpha': 1.0}),
                devices=jax.local_devices()[:1])
  train.build(tiny_config(**{'early_stopping.metric': 'val_ema/accuracy', 'ema.decay': 0.9}))


# --------------------------------------------------------------------------- averages

def test_ema_and_polyak_are_evaluated_and_resume_bit_exact(tmp_path):
  """val_ema/* and val_polyak/* beside val/*; a run resumed from its step-6 checkpoint ends
  bit-identical to the uninterrupted run (the averages live in the optimizer state)."""
  config = tiny_config(**{'ema.decay': 0.9, 'polyak.start_step': 3}, **MIX)
  straight = run(config, tmp_path / 'straight')
  last = straight[-1]
  for prefix in ('val', 'val_ema', 'val_polyak'):
    assert 0.0 <= last[f'{prefix}/accuracy'] <= 1.0 and np.isfinite(last[f'{prefix}/loss'])
  assert last['val_ema/loss'] != last['val/loss'] != last['val_polyak/loss']

  resumed = tmp_path / 'resumed'
  run(config, resumed)
  shutil.rmtree(resumed / 'checkpoints' / '12')  # as if killed after the step-6 checkpoint
  run(config, resumed)
  assert comparable(metrics.read_jsonl(str(resumed / metrics.METRICS_FILE))) == \
      comparable(straight)


# --------------------------------------------------------------------------- early stopping

def _stopping_config(**overrides):
  # min_delta 10: only the first evaluation improves, so the run stops after `patience` more.
  es = {'early_stopping.metric': 'val/loss', 'early_stopping.mode': 'min',
        'early_stopping.patience': 2, 'early_stopping.min_delta': 10.0,
        'eval_every': 2, 'checkpoint_every': 3, 'keep_checkpoints': 1}
  return tiny_config(**{**es, **overrides})


def test_early_stopping_stops_keeps_best_and_records_it(tmp_path):
  config = _stopping_config()
  records = run(config, tmp_path / 'es')
  assert records[-1]['step'] == 6  # evals at 2 (best), 4, 6: two without improvement
  assert records[-1]['early_stopping/best_step'] == 2
  assert records[-1]['early_stopping/best'] == curve(records, 'val/loss')[0]
  best = json.loads((tmp_path / 'es' / stopping.BEST_FILE).read_text())
  assert best['best_step'] == 2 and best['stopped_at'] == 6
  # keep_checkpoints=1 rotated the regular ones; the best survives in its own directory.
  assert sorted(os.listdir(tmp_path / 'es' / 'checkpoints')) == ['6', 'best']
  assert os.listdir(tmp_path / 'es' / stopping.BEST_DIR) == ['2']
  setup = train.build(config)
  target = train.init_state(setup, jax.random.PRNGKey(0))
  ckpt = checkpointing.Checkpointer(str(tmp_path / 'es'), keep=1, subdir=stopping.BEST_DIR)
  state = ckpt.restore(2, target)
  ckpt.close()
  assert int(state.step) == 2
  np.testing.assert_allclose(float(optax.global_norm(state.params)),
                             records[1]['param_norm'], rtol=1e-6)


def test_early_stopping_resumes(tmp_path):
  """Killed after the step-3 checkpoint: the rerun stops at the same step with the same best
  and metrics; rerunning a stopped run trains nothing."""
  config = _stopping_config(keep_checkpoints=3)
  straight = run(config, tmp_path / 'straight')
  workdir = tmp_path / 'killed'
  run(config, workdir)
  shutil.rmtree(workdir / 'checkpoints' / '6')  # as if killed after the step-3 checkpoint
  resumed = run(config, workdir)
  assert comparable(resumed) == comparable(straight)
  assert sorted(os.listdir(workdir / 'checkpoints')) == ['3', '6', 'best']
  assert json.loads((workdir / stopping.BEST_FILE).read_text())['stopped_at'] == 6
  again = run(config, workdir)  # a stopped run resumes as finished
  assert comparable(again) == comparable(straight)


# --------------------------------------------------------------------------- command line

ALL_ON = ['--config.mixup.mixup_alpha=0.8', '--config.mixup.cutmix_alpha=1.0',
          '--config.ema.decay=0.99', '--config.polyak.start_step=2',
          '--config.early_stopping.metric=val/accuracy',
          '--config.data.randaugment=rand-m9-n2-mstd0.5', '--config.data.random_erasing=0.25',
          '--config.data.cutout=8', '--config.label_smoothing=0.1']


def test_every_recipe_switch_at_once_from_the_command_line(tmp_path, capsys):
  """default.py:runlocal with all the recipes on trains and reports val, val_ema, val_polyak."""
  from tests.experiments.test_main import DEFAULT_LOCAL, main_inprocess
  workdir = tmp_path / 'all'
  status, err = main_inprocess([f'--config={DEFAULT_LOCAL}', f'--workdir={workdir}', *ALL_ON],
                               capsys)
  assert status == 0, err
  last = metrics.read_jsonl(str(workdir / metrics.METRICS_FILE))[-1]
  for prefix in ('val', 'val_ema', 'val_polyak'):
    assert 0.0 <= last[f'{prefix}/accuracy'] <= 1.0, prefix
  assert last['early_stopping/best_step'] == last['step']
  assert os.listdir(workdir / stopping.BEST_DIR) == [str(last['step'])]


@pytest.mark.parametrize('arg, expected', [
    ('--config.mixup.mixup_alpha=-1.0', 'mixup.mixup_alpha=-1.0'),
    ('--config.mixup.prob=1.5', 'mixup.prob=1.5'),
    ('--config.mixup.mode=row', 'mixup.mode'),
    ('--config.data.randaugment=rand-m9-x3', 'randaugment'),
    ('--config.early_stopping.metric=val/accuracy', None),
])
def test_bad_recipe_value_exits_2_in_one_line_writing_nothing(tmp_path, capsys, arg, expected):
  from tests.experiments.test_main import DEFAULT_LOCAL, main_inprocess
  args = [arg]
  if expected is None:  # a valid metric with an unknown mode
    args.append('--config.early_stopping.mode=up')
    expected = 'early_stopping.mode'
  workdir = tmp_path / 'bad'
  status, err = main_inprocess([f'--config={DEFAULT_LOCAL}', f'--workdir={workdir}', *args],
                               capsys)
  assert status == 2 and expected in err and err.count('\n') == 1, err
  assert not workdir.exists()
