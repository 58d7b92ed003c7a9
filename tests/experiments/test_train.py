"""The trainer in-process on 8 fake CPU devices: losses, devices, accumulation, evals, NaN, full batch.

Runs are tiny (MLP or linear classifier on the 8×8 digits, a dozen steps) so
that each test compiles once or twice.
"""
from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from experiments import checkpointing
from experiments import data
from experiments import losses
from experiments import metrics
from experiments import train
from experiments.configs import common


def tiny_config(**overrides) -> ml_collections.ConfigDict:
  """A 2-layer MLP on digits: 12 steps of momentum SGD, every cadence on."""
  c = common.base_config()
  c.model.name = 'mlp'
  c.model.overrides = ml_collections.ConfigDict(dict(depth=2, width=32))
  c.data.name = 'digits'
  c.data.image_size = 8
  c.batch_size = 64
  c.total_steps = 12
  c.optimizer.name = 'momentum'
  c.optimizer.learning_rate = 0.05
  c.schedule.name = 'cosine'
  c.schedule.warmup_steps = 2
  c.log_every = 1
  c.eval_every = 6
  c.checkpoint_every = 6
  for key, value in overrides.items():
    target = c
    *parents, leaf = key.split('.')
    for p in parents:
      target = target[p]
    target[leaf] = value
  return c


def run(config, workdir, devices=None):
  setup = train.build(config, devices=devices)
  train.train_and_evaluate(setup, str(workdir), progress_stream=open(os.devnull, 'w'))
  return metrics.read_jsonl(os.path.join(workdir, metrics.METRICS_FILE))


def curve(records, key):
  return np.array([r[key] for r in records if key in r])


# --------------------------------------------------------------------------- losses

def test_losses_against_references():
  rng = np.random.default_rng(0)
  logits = jnp.asarray(rng.normal(size=(6, 5)), jnp.float32)
  labels = jnp.asarray([0, 1, 2, 3, 4, 2])
  eps = 0.1
  targets = optax.smooth_labels(jax.nn.one_hot(labels, 5), eps)
  np.testing.assert_allclose(losses.softmax_xent(logits, labels, eps),
                             optax.softmax_cross_entropy(logits, targets), rtol=1e-6)
  s, y = np.asarray(logits), np.asarray(labels)
  hinge = [sum(max(0.0, s[i, j] - s[i, y[i]] + 1.0) for j in range(5) if j != y[i])
           for i in range(6)]
  np.testing.assert_allclose(losses.hinge(logits, labels), hinge, rtol=1e-6)
  np.testing.assert_allclose(losses.l2(logits, labels),
                             0.5 * np.sum((s - np.eye(5)[y]) ** 2, axis=1), rtol=1e-6)
  with pytest.raises(ValueError, match='loss=.*valid'):
    losses.get('cross_entropy')


# --------------------------------------------------------------------------- devices

def test_eight_devices_match_one_device(tmp_path):
  """Same global batch on 8 devices and on 1: loss curves within 1e-5.

  The one-device run pmaps over a one-device subset of the 8 fake devices:
  the same per-device program a one-device machine compiles, without a second
  interpreter (XLA_FLAGS is read once per process).
  """
  config = tiny_config()
  eight = run(config, tmp_path / 'eight')
  one = run(config, tmp_path / 'one', devices=jax.local_devices()[:1])
  assert len(eight) == len(one) == 12
  for key in ('train/loss', 'train/accuracy', 'grad_norm', 'val/loss', 'val/accuracy'):
    np.testing.assert_allclose(curve(eight, key), curve(one, key), atol=1e-5, err_msg=key)
  assert curve(eight, 'train/loss')[-1] < curve(eight, 'train/loss')[0]


def test_sync_batch_norm_makes_eight_devices_match_one(tmp_path):
  """BatchNorm statistics over the global batch (SyncBN): 8 devices = 1 device; unsynced, not."""
  bn = dict(depth=2, width=32, batchnorm=True)
  config = tiny_config(total_steps=6, eval_every=6, checkpoint_every=0)
  config.model.overrides = ml_collections.ConfigDict(bn)
  assert train.build(config).module.bn_axis_name == train.AXIS
  eight = run(config, tmp_path / 'eight')
  one = run(config, tmp_path / 'one', devices=jax.local_devices()[:1])
  for key in ('train/loss', 'grad_norm', 'val/loss'):
    np.testing.assert_allclose(curve(eight, key), curve(one, key), atol=1e-5, err_msg=key)
  config.sync_batch_norm = False
  per_device = run(config, tmp_path / 'per_device')
  assert np.abs(curve(per_device, 'train/loss') - curve(one, 'train/loss')).max() > 1e-3


def test_inline_and_threaded_prefetch_train_identically(tmp_path):
  """config.prefetch changes where batches are prepared, never which: same run, bit for bit."""
  config = tiny_config(total_steps=4, eval_every=4, checkpoint_every=0)
  assert config.prefetch is None  # the trainer picks: inline on these CPU devices
  runs = {}
  for prefetch in (None, 0, 3):
    config.prefetch = prefetch
    runs[prefetch] = run(config, tmp_path / str(prefetch))
  for key in ('train/loss', 'grad_norm', 'param_norm', 'val/loss'):
    np.testing.assert_array_equal(curve(runs[None], key), curve(runs[0], key), err_msg=key)
    np.testing.assert_array_equal(curve(runs[0], key), curve(runs[3], key), err_msg=key)


def test_gradient_accumulation_matches_one_big_batch(tmp_path):
  base = run(tiny_config(total_steps=4, eval_every=0, checkpoint_every=0), tmp_path / 'a')
  accum = run(tiny_config(total_steps=4, eval_every=0, checkpoint_every=0, accum_steps=4),
              tmp_path / 'b')
  np.testing.assert_allclose(curve(base, 'train/loss'), curve(accum, 'train/loss'), atol=1e-5)
  np.testing.assert_allclose(curve(base, 'param_norm'), curve(accum, 'param_norm'), atol=1e-5)


@pytest.mark.parametrize('accum', [1, 2])
def test_cpu_train_step_has_no_loop_around_the_model(accum):
  """XLA:CPU runs convolutions in a loop body ~30x slower (jax-ml/jax#12868),
  so on CPU the micro-batch loop is unrolled: no scan in the traced step."""
  config = tiny_config(accum_steps=accum)
  config.model.name = 'convnet'
  config.model.overrides = ml_collections.ConfigDict()
  setup = train.build(config, devices=jax.local_devices()[:1])
  state = train.init_state(setup, jax.random.PRNGKey(0))
  batch = {'image': jnp.zeros((1, 64, 8, 8, 1)), 'label': jnp.zeros((1, 64), jnp.int32)}
  step = jax.pmap(train.make_train_step(setup), axis_name=train.AXIS)
  jaxpr = str(jax.make_jaxpr(step)(jax.tree.map(lambda x: x[None], state), batch,
                                   jax.random.PRNGKey(0)[None]))
  assert 'conv_general_dilated' in jaxpr
  assert 'scan[' not in jaxpr and 'while[' not in jaxpr


def test_bfloat16_computes_in_bf16_keeps_float32_state(tmp_path):
  config = tiny_config(dtype='bfloat16', total_steps=3, eval_every=0, checkpoint_every=3)
  setup = train.build(config)
  assert setup.module.dtype == jnp.bfloat16
  records = run(config, tmp_path)
  f32 = run(tiny_config(total_steps=3, eval_every=0, checkpoint_every=0), tmp_path / 'f32')
  np.testing.assert_allclose(curve(records, 'train/loss'), curve(f32, 'train/loss'), rtol=2e-2)
  ckpt = checkpointing.Checkpointer(str(tmp_path))
  state = ckpt.restore(3, train.init_state(setup, jax.random.PRNGKey(0)))
  dtypes = {x.dtype for x in jax.tree.leaves((state.params, state.opt_state))
            if np.issubdtype(x.dtype, np.floating)}
  assert dtypes == {np.dtype(np.float32)}


# --------------------------------------------------------------------------- evals

def test_eval_covers_every_example_once():
  """360 test digits, eval batch 48 on 8 devices (7.5 batches): each counted exactly once."""
  config = tiny_config(eval_batch_size=48)
  setup = train.build(config)
  state = train.init_state(setup, jax.random.PRNGKey(1))
  p_eval = train.pmap_eval_step(setup)
  rep = lambda t: train.replicate(t, jax.local_devices())
  batches = data.make_eval_iterator(config.data, 48, 8)
  out = train.evaluate(p_eval, rep(state.params), rep(state.model_state), batches, setup.task)
  assert out['val/count'] == setup.info.num_eval == 360
  # Oracle: the whole split in one unpadded host batch.
  (whole,) = list(data.make_eval_iterator(config.data, 360, 1))
  assert whole['mask'].all()
  logits = setup.module.apply({'params': state.params}, whole['image'][0], train=False)
  labels = whole['label'][0]
  np.testing.assert_allclose(out['val/accuracy'], np.mean(np.argmax(logits, -1) == labels),
                             atol=1e-12)
  np.testing.assert_allclose(out['val/loss'], np.mean(losses.softmax_xent(logits, labels)),
                             rtol=1e-5)


# --------------------------------------------------------------------------- NaN

def test_nan_stops_naming_step_and_last_checkpoint(tmp_path):
  config = tiny_config(total_steps=6, checkpoint_every=1, eval_every=0, **{
      'optimizer.name': 'sgd', 'optimizer.learning_rate': 1e30, 'schedule.name': 'constant',
      'schedule.warmup_steps': None})
  setup = train.build(config)
  with pytest.raises(train.NonFiniteError) as e:
    train.train_and_evaluate(setup, str(tmp_path), progress_stream=open(os.devnull, 'w'))
  message = str(e.value)
  step = int(message.split('at step ')[1].split(';')[0])
  assert step >= 2
  assert f'checkpoints/{step - 1}' in message
  logged = metrics.read_jsonl(os.path.join(tmp_path, metrics.METRICS_FILE))
  assert [r['step'] for r in logged] == list(range(1, step))  # nothing written is lost
  assert all(np.isfinite(r['train/loss']) for r in logged)
  assert os.path.isdir(tmp_path / 'checkpoints' / str(step - 1))


# --------------------------------------------------------------------------- full batch

def test_full_batch_first_and_second_order(tmp_path):
  """Whole train split per step (1437 digits, padded to 8 devices): GD and L-BFGS.

  Step 1's loss is the full-batch loss of the initial parameters (checked
  against a direct computation); L-BFGS's line search makes the loss
  decrease monotonically, and it ends far below GD.
  """
  common_kw = {'model.name': 'linear_classifier', 'model.overrides': ml_collections.ConfigDict(),
               'full_batch': True, 'total_steps': 8, 'eval_every': 0, 'checkpoint_every': 0,
               'schedule.name': 'constant', 'schedule.warmup_steps': None,
               'reg.kind': 'l2', 'reg.strength': 1e-3}
  gd = tiny_config(**common_kw, **{'optimizer.name': 'sgd', 'optimizer.learning_rate': 0.1})
  lbfgs = tiny_config(**common_kw, **{'optimizer.name': 'lbfgs',
                                      'optimizer.learning_rate': None})
  setup = train.build(gd)
  assert setup.global_batch == 1437
  params = train.init_state(setup, jax.random.split(jax.random.PRNGKey(0))[0]).params
  whole = next(data.make_train_iterator(gd.data, 0, 0, full_batch=True))  # repeats forever
  x, y = whole['image'][0][whole['mask'][0]], whole['label'][0][whole['mask'][0]]
  assert len(y) == 1437
  logits = setup.module.apply({'params': params}, x, train=False)
  expected = np.mean(losses.softmax_xent(logits, y)) + 1e-3 * np.sum(
      np.square(params['head']['kernel']))
  gd_records = run(gd, tmp_path / 'gd')
  np.testing.assert_allclose(gd_records[0]['train/objective'], expected, rtol=1e-5)
  lb_records = run(lbfgs, tmp_path / 'lbfgs')
  lb = curve(lb_records, 'train/objective')
  assert np.all(np.diff(lb) <= 1e-6), lb
  assert lb[-1] < 0.5 * curve(gd_records, 'train/objective')[-1]
