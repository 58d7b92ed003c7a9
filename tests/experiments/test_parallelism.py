"""config.parallelism on 8 fake CPU devices: pmap, jit and fsdp train the same run, resume from
each other's checkpoints, and fsdp holds ~1/8 of the state per device (ViT-L/16 with AdamW)."""
from __future__ import annotations

import os
import shutil

import jax
import ml_collections
import numpy as np
import optax
import pytest

from experiments import checkpointing
from experiments import config_validation
from experiments import metrics
from experiments import train
from experiments.trainer import parallel
from experiments.trainer import sharding
import vision
from tests.experiments.test_main import _assert_refused
from tests.experiments.test_main import main_inprocess
from tests.experiments.test_train import run
from tests.experiments.test_train import tiny_config

MODES = ('pmap', 'jit', 'fsdp')
# Differ by mode by design (per-device bytes) or by the clock.
NOT_COMPARED = set(metrics.TIMING_KEYS) | {'state_bytes_per_device'}


def recipe_config(mode: str) -> ml_collections.ConfigDict:
  """BatchNorm MLP, 2 accumulated micro-batches, Mixup, EMA, early stopping; no dropout."""
  c = tiny_config(parallelism=mode, total_steps=8, accum_steps=2, eval_every=4,
                  checkpoint_every=2, keep_checkpoints=4)
  c.model.overrides = ml_collections.ConfigDict(dict(depth=2, width=32, batchnorm=True))
  c.mixup.mixup_alpha = 0.4
  c.ema.decay = 0.9
  c.early_stopping.metric = 'val/loss'
  c.early_stopping.mode = 'min'
  c.early_stopping.patience = 10
  return c


def assert_same(got, want, mode):
  assert [r['step'] for r in got] == [r['step'] for r in want], mode
  for g, w in zip(got, want):
    keys = set(w) - NOT_COMPARED
    assert keys == set(g) - NOT_COMPARED, (mode, g['step'])
    for k in sorted(keys):
      np.testing.assert_allclose(g[k], w[k], atol=1e-5, rtol=0, err_msg=f'{mode} {k}')


def rewind(workdir, step):
  """`workdir` as it was after the checkpoint of `step`: later checkpoints removed."""
  ckpts = os.path.join(workdir, checkpointing.CHECKPOINT_DIR)
  for name in os.listdir(ckpts):
    if name.isdigit() and int(name) > step:
      shutil.rmtree(os.path.join(ckpts, name))


def test_modes_train_alike_and_resume_from_each_other(tmp_path):
  """A pmap run; the same workdir rewound and resumed under jit (from pmap's step 2), fsdp (from
  jit's step 4) and pmap (from fsdp's step 6): every record equals the pmap run's within 1e-5,
  so each mode trains, evaluates and checkpoints alike and reads the others' checkpoints."""
  want = run(recipe_config('pmap'), tmp_path / 'pmap')
  assert want[-1]['val_ema/loss'] > 0 and want[-1]['val/count'] == 360
  workdir = tmp_path / 'chain'
  shutil.copytree(tmp_path / 'pmap', workdir)
  per_device = {}
  for mode, step in (('jit', 2), ('fsdp', 4), ('pmap', 6)):
    rewind(workdir, step)
    got = run(recipe_config(mode), workdir)
    assert_same(got, want, f'{mode} resumed from step {step}')
    per_device[mode] = got[-1]['state_bytes_per_device']
  assert per_device['jit'] == per_device['pmap'] > 4 * per_device['fsdp']


def test_fsdp_state_is_split_as_sharding_says():
  """The placed fsdp state's per-device bytes equal sharding.per_device_bytes' figure."""
  setup = train.build(recipe_config('fsdp'))
  par = parallel.make(setup)
  state = par.place_state(train.init_state(setup, jax.random.PRNGKey(0)))
  device = jax.local_devices()[0]
  held = sum(s.data.nbytes for leaf in jax.tree.leaves((state.params, state.opt_state))
             for s in leaf.addressable_shards if s.device == device)
  assert held == par.state_bytes
  kernel = state.params['fc0']['kernel']  # [64, 32]: split on its larger dimension
  assert kernel.sharding.spec == jax.sharding.PartitionSpec('data')
  assert state.params['head']['bias'].sharding.is_fully_replicated  # [10]: 8 does not divide
  host = par.host(state)
  np.testing.assert_array_equal(host.params['fc0']['kernel'],
                                train.init_state(setup, jax.random.PRNGKey(0))
                                .params['fc0']['kernel'])


def test_vit_large_fsdp_bytes_per_device():
  """ViT-L/16 + AdamW on 8 devices: fsdp ≤ jit/8 + the unshardable remainder (shapes only)."""
  module = vision.create_model('vit_large_patch16_224')
  variables = jax.eval_shape(lambda k: module.init(k, np.zeros((1, 224, 224, 3)), train=False),
                             jax.random.PRNGKey(0))
  params = variables['params']
  opt_state = jax.eval_shape(optax.adamw(1e-3, weight_decay=0.05).init, params)
  tree = (params, opt_state)
  jit_bytes = sharding.per_device_bytes(tree, 'jit', 8)
  fsdp_bytes = sharding.per_device_bytes(tree, 'fsdp', 8)
  remainder = sharding.unshardable_bytes(tree, 8)
  n_params = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(params))
  assert 300e6 < n_params < 310e6  # ViT-L/16: 304M
  assert jit_bytes == sharding.per_device_bytes(tree, 'pmap', 8) >= 3 * 4 * n_params
  assert fsdp_bytes <= jit_bytes / 8 + remainder
  assert remainder < 1e-3 * jit_bytes
  print(f'ViT-L/16 + AdamW per device on 8: jit {jit_bytes / 2**20:.1f} MiB, '
        f'fsdp {fsdp_bytes / 2**20:.1f} MiB (unshardable {remainder} B)')


@pytest.mark.parametrize('config,args,expected', [
    ('default.py:runlocal', ['--config.parallelism=foo'],
     "parallelism='foo'; valid: one of pmap, jit, fsdp"),
    ('lbfgs_digits.py:steps=3', ['--config.parallelism=fsdp'],
     "optimizer.name='lbfgs' evaluates the objective inside its update and runs under "
     "parallelism=pmap only, not 'fsdp'"),
])
def test_bad_parallelism_exits_2_with_one_line(tmp_path, capsys, config, args, expected):
  workdir = tmp_path / 'run'
  status, err = main_inprocess([f'--config=experiments/configs/{config}',
                                f'--workdir={workdir}', *args], capsys)
  _assert_refused(status, err, workdir, expected)


def test_workdir_resumes_under_another_parallelism(tmp_path):
  """config.json may differ in `parallelism` only (also absent, from an older run)."""
  config = tiny_config()
  config_validation.write_config(str(tmp_path), config)
  assert config_validation.check_workdir(str(tmp_path), tiny_config(parallelism='fsdp'))
  with pytest.raises(ValueError, match='batch_size: 64 -> 32'):
    config_validation.check_workdir(str(tmp_path), tiny_config(parallelism='jit', batch_size=32))
  del config.parallelism
  config_validation.write_config(str(tmp_path), config)
  assert config_validation.check_workdir(str(tmp_path), tiny_config(parallelism='jit'))
