"""`config.init_from.weights`: a workdir's raw parameters, its EMA or its Polyak average.

Oracles: the source run itself — the averages in its last checkpoint restored
by the trainer's own target (`train.init_state`), and its `val_ema/*` and
`val_polyak/*` metrics, which an evaluation-only run from those weights must
reproduce exactly.
"""
from __future__ import annotations

import os
import shutil

import jax
import numpy as np
import pytest
from safetensors.numpy import save_file

from experiments import checkpointing
from experiments import config_schema
from experiments import config_validation
from experiments import init_from
from experiments import metrics
from experiments import train
from optim import averaging
from tests.experiments.test_main import main_inprocess
from tests.experiments.test_main import MLP
from tests.experiments.test_train import run
from tests.experiments.test_train import tiny_config

STEPS = 6


def _source_config(**overrides):
  return tiny_config(**{'total_steps': STEPS, 'eval_every': STEPS, 'checkpoint_every': STEPS,
                        **overrides})


def _source(workdir, config) -> str:
  """Trains `config` into `workdir` and saves its config.json as experiments.main does."""
  run(config, workdir)
  config_validation.write_config(str(workdir), config_schema.settle(config))
  return str(workdir)


@pytest.fixture(scope='module')
def sources(tmp_path_factory):
  root = tmp_path_factory.mktemp('weights')
  both = _source_config(**{'ema.decay': 0.9, 'polyak.start_step': 2})
  polyak_only = _source_config(**{'polyak.start_step': 2})
  return dict(both=_source(root / 'both', both), both_config=both,
              polyak_only=_source(root / 'polyak_only', polyak_only), root=root)


def _load(path: str, config, weights: str) -> dict:
  setup = train.build(config, devices=jax.local_devices()[:1])
  block = init_from.default_config()
  block.path, block.weights = path, weights
  fresh = jax.device_get(dict(setup.module.init(jax.random.PRNGKey(1),
                                                np.zeros((1, *setup.info.image_shape)))))
  return init_from.load(block, setup.module, fresh)


def test_weights_are_the_averages_in_the_runs_last_checkpoint(sources):
  config = sources['both_config']
  setup = train.build(config)
  ckpt = checkpointing.Checkpointer(sources['both'])
  state = ckpt.restore(STEPS, train.init_state(setup, jax.random.PRNGKey(0)))
  ckpt.close()
  want = {'params': state.params, **averaging.averaged_params(state.opt_state)}
  assert sorted(want) == ['ema', 'params', 'polyak']
  for weights, expected in want.items():
    got = _load(sources['both'], config, weights)['params']
    jax.tree.map(np.testing.assert_array_equal, got, expected)
  assert init_from.source_weights(sources['both']) == ['params', 'ema', 'polyak']
  assert init_from.source_weights(sources['polyak_only']) == ['params', 'polyak']


@pytest.mark.parametrize('weights,prefix', [('ema', 'val_ema'), ('polyak', 'val_polyak')])
def test_evaluation_only_run_scores_what_the_source_run_scored(sources, tmp_path, weights,
                                                               prefix):
  want = metrics.read_jsonl(os.path.join(sources['both'], metrics.METRICS_FILE))[-1]
  config = _source_config(**{'total_steps': 0, 'init_from.path': sources['both'],
                             'init_from.weights': weights})
  record = run(config, tmp_path / 'eval')[-1]
  assert record['step'] == 0
  for name in ('loss', 'accuracy'):
    assert record[f'val/{name}'] == want[f'{prefix}/{name}'], name  # same weights, same eval


def test_sources_without_the_average_are_refused_in_one_line(sources, tmp_path):
  config = sources['both_config']
  with pytest.raises(ValueError, match=r"kept no ema average \(ema.decay is unset in its "
                                       r"config.json\); it has: params, polyak\.$"):
    _load(sources['polyak_only'], config, 'ema')
  bare = tmp_path / 'bare'  # a workdir written by the Checkpointer alone
  shutil.copytree(sources['both'], bare)
  os.remove(bare / 'config.json')
  with pytest.raises(ValueError, match="has no config.json.*only init_from.weights='params'"):
    _load(str(bare), config, 'polyak')
  _load(str(bare), config, 'params')  # the raw parameters need no config
  weight_file = str(tmp_path / 'w.safetensors')
  save_file({'w': np.zeros(3, np.float32)}, weight_file)
  with pytest.raises(ValueError, match='needs a visopt workdir .* holds parameters only'):
    _load(weight_file, config, 'ema')


@pytest.mark.parametrize('weights,expected', [
    ('bogus', "init_from.weights='bogus' is unknown; valid: params, ema, polyak."),
    ('ema', 'kept no ema average (ema.decay is unset in its config.json); it has: params, '
            'polyak.'),
])
def test_command_line_refuses_with_exit_2(sources, tmp_path, capsys, weights, expected):
  workdir = tmp_path / 'run'
  status, err = main_inprocess([f'--config={MLP}', f'--workdir={workdir}',
                                f'--config.init_from.path={sources["polyak_only"]}',
                                f'--config.init_from.weights={weights}'], capsys)
  assert status == 2, err
  assert err.count('\n') == 1 and expected in err, err
  assert not os.path.exists(workdir)
