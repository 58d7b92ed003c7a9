"""The optimizer policy keys in the trainer: optimizer.freeze (a linear probe keeps every other
parameter and the frozen BatchNorm statistics bit-identical) and optimizer.layer_decay (the
first update is the plain one times the BEiT factor, scanned blocks per row)."""
from __future__ import annotations

import os

import jax
import ml_collections
import numpy as np
import pytest

from experiments import checkpointing
from experiments import train
from optim import layer_decay
from tests.experiments.test_train import tiny_config


def _final_and_start(config, workdir, steps):
  devices = jax.local_devices()[:2]
  setup = train.build(config, devices=devices)
  start = train.init_state(setup, jax.random.split(jax.random.PRNGKey(config.seed))[0])
  train.train_and_evaluate(setup, str(workdir), progress_stream=open(os.devnull, 'w'))
  final = checkpointing.Checkpointer(str(workdir)).restore(steps, start)
  return setup, start, final


def _bn_config(**overrides):
  return tiny_config(**{'model.overrides': ml_collections.ConfigDict(
      dict(depth=2, width=32, batchnorm=True)), 'total_steps': 4, 'eval_every': 0,
      'checkpoint_every': 4, 'optimizer.name': 'adamw', 'optimizer.learning_rate': 0.01,
      'optimizer.weight_decay': 0.1, **overrides})


def test_linear_probe_keeps_everything_but_the_head_and_the_batch_norm_statistics(tmp_path):
  config = _bn_config()
  config.optimizer.freeze = ('^(?!head/)',)
  setup, start, final = _final_and_start(config, tmp_path / 'probe', 4)
  assert set(jax.tree.leaves(setup.frozen_state)) == {True}
  flat_start = dict(jax.tree_util.tree_flatten_with_path(start.params)[0])
  for path, leaf in jax.tree_util.tree_flatten_with_path(final.params)[0]:
    name = '/'.join(k.key for k in path)
    if name.startswith('head/'):
      assert np.max(np.abs(leaf - flat_start[path])) > 1e-3, name
    else:
      assert leaf.tobytes() == flat_start[path].tobytes(), name
  for a, b in zip(jax.tree.leaves(final.model_state), jax.tree.leaves(start.model_state)):
    assert a.tobytes() == b.tobytes()
  # Without the freeze the same run moves the statistics (the check above is not vacuous).
  _, start, final = _final_and_start(_bn_config(), tmp_path / 'full', 4)
  assert any(np.max(np.abs(a - b)) > 1e-3 for a, b in
             zip(jax.tree.leaves(final.model_state), jax.tree.leaves(start.model_state)))


def test_freezing_a_dense_layer_keeps_its_batch_norm_training():
  config = _bn_config()
  config.optimizer.freeze = ('^fc0/',)
  setup = train.build(config, devices=jax.local_devices()[:1])
  assert not any(jax.tree.leaves(setup.frozen_state))
  config.optimizer.freeze = ('^(fc0|bn0)/',)
  frozen = train.build(config, devices=jax.local_devices()[:1]).frozen_state['batch_stats']
  assert frozen['bn0'] == {'mean': True, 'var': True}
  assert frozen['bn1'] == {'mean': False, 'var': False}
  # no_decay patterns are checked on every parameter, then applied to the trainable ones.
  config.optimizer.no_decay = ('bias',)
  config.schedule.name, config.schedule.warmup_steps = 'constant', None  # lr > 0 at step 0
  setup = train.build(config, devices=jax.local_devices()[:1])
  params = train.init_state(setup, jax.random.PRNGKey(0)).params
  updates, _ = setup.tx.update(jax.tree.map(np.ones_like, params), setup.tx.init(params), params)
  assert not np.any(updates['fc0']['kernel']) and not np.any(updates['bn0']['scale'])
  assert np.all(updates['fc1']['kernel'] != 0)
  config.optimizer.no_decay = ('decoder',)
  with pytest.raises(ValueError, match=r"optimizer.no_decay pattern\(s\) \['decoder'\]"):
    train.build(config)


def _vit_config(**overrides):
  return tiny_config(**{
      'model.name': 'vit_tiny_patch16_224',
      'model.overrides': ml_collections.ConfigDict(
          dict(patch_size=4, embed_dim=16, depth=3, num_heads=2)),
      'total_steps': 1, 'eval_every': 0, 'checkpoint_every': 1, 'optimizer.name': 'sgd',
      'optimizer.learning_rate': 1.0, 'schedule.name': 'constant',
      'schedule.warmup_steps': None, **overrides})


@pytest.mark.parametrize('scan', [False, True])
def test_layer_decay_first_update_is_the_plain_one_times_the_factor(tmp_path, scan):
  decay = 0.5
  plain = _vit_config()
  plain.model.overrides.scan_blocks = scan
  decayed = _vit_config()
  decayed.model.overrides.scan_blocks = scan
  decayed.optimizer.layer_decay = decay
  _, start, plain_final = _final_and_start(plain, tmp_path / 'plain', 1)
  _, _, decayed_final = _final_and_start(decayed, tmp_path / 'decayed', 1)
  factors = layer_decay.layer_decay_multipliers(start.params, decay)
  if scan:
    np.testing.assert_array_equal(factors['blocks']['attn']['qkv']['kernel'],
                                  [decay ** 3, decay ** 2, decay])
  else:
    assert factors['blocks_0']['attn']['qkv']['kernel'] == decay ** 3
  assert factors['pos_embed'] == decay ** 4 and factors['head']['kernel'] == 1.0
  for s, p, d, m in zip(jax.tree.leaves(start.params), jax.tree.leaves(plain_final.params),
                        jax.tree.leaves(decayed_final.params), jax.tree.leaves(factors)):
    m = np.reshape(m, np.shape(m) + (1,) * (s.ndim - np.ndim(m)))
    # Up to float32 rounding of θ + Δ (a few ulps of θ).
    slack = 1e-5 * np.abs(m * (p - s)) + 4 * np.finfo(np.float32).eps * np.abs(s)
    assert np.all(np.abs((d - s) - m * (p - s)) <= slack)


def test_policy_errors_name_the_key():
  config = _bn_config()
  config.optimizer.layer_decay = 0.75
  with pytest.raises(ValueError, match="cannot tell the layer of parameter 'bn0/bias'"):
    train.build(config)
  config = _bn_config()
  config.optimizer.freeze = ('decoder',)
  with pytest.raises(ValueError, match=r"optimizer.freeze pattern\(s\) \['decoder'\] match no"):
    train.build(config)
  config = _vit_config()
  config.optimizer = ml_collections.ConfigDict(dict(name='lbfgs', learning_rate=None,
                                                    freeze=('head',)))
  with pytest.raises(ValueError, match="optimizer.freeze=.*'lbfgs'.*first-order optimizer"):
    train.build(config)
  assert train.POLICY_KEYS == ('lr_mult', 'no_decay', 'freeze', 'layer_decay')
