"""Every shipped config loads, documents its command, and its `runlocal` variant builds (and runs)."""
from __future__ import annotations

import importlib.util
import os

import jax
import ml_collections
import pytest

from experiments import train
from experiments.configs import common

CONFIG_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), 'experiments', 'configs')
# Files that are helpers, not configs.
HELPERS = {'__init__.py', 'common.py', 'imagenet_common.py', 'cifar10_common.py'}
CONFIGS = sorted(f for f in os.listdir(CONFIG_DIR) if f.endswith('.py') and f not in HELPERS)
TRAINER_CONFIGS = ['default.py', 'digits_baselines.py', 'vit_cifar10.py', 'swin_cifar10.py',
                   'pvt_cifar10.py', 'vit_imagenet.py', 'swin_imagenet.py', 'pvt_imagenet.py',
                   'mit_imagenet.py']


def load(name):
  spec = importlib.util.spec_from_file_location(name[:-3], os.path.join(CONFIG_DIR, name))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def test_all_trainer_configs_are_shipped():
  assert set(TRAINER_CONFIGS) <= set(CONFIGS)


@pytest.mark.parametrize('name', CONFIGS)
def test_config_loads_with_command_in_docstring(name):
  module = load(name)
  assert 'python -m experiments.' in (module.__doc__ or ''), name
  assert isinstance(module.get_config(), ml_collections.ConfigDict)


def test_parse_arg_types_and_errors():
  args = common.parse_arg('variant=S/16,runlocal,depth=3', variant='B/16', runlocal=False,
                          depth=12)
  assert (args.variant, args.runlocal, args.depth) == ('S/16', True, 3)
  with pytest.raises(ValueError, match='unknown; valid'):
    common.parse_arg('nope=1', runlocal=False)


@pytest.mark.parametrize('name,arg', [
    ('vit_cifar10.py', 'runlocal'), ('swin_cifar10.py', 'runlocal'),
    ('pvt_cifar10.py', 'runlocal'), ('vit_imagenet.py', 'runlocal'),
    ('swin_imagenet.py', 'runlocal'), ('pvt_imagenet.py', 'runlocal'),
    ('mit_imagenet.py', 'runlocal'), ('vit_imagenet.py', 'variant=B/16'),
    ('swin_imagenet.py', 'variant=T'), ('pvt_imagenet.py', 'variant=small'),
    ('mit_imagenet.py', 'variant=b2'), ('vit_cifar10.py', None),
    ('swin_cifar10.py', None), ('pvt_cifar10.py', None),
])
def test_tfds_configs_build(name, arg):
  """Full-size and runlocal TFDS configs validate against the data spec (mock, no download)."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  config = load(name).get_config(arg)
  with tfds.testing.mock_data(num_examples=16, policy=tfds.testing.MockPolicy.USE_CODE):
    setup = train.build(config)
  assert setup.total_steps >= 1
  if arg and 'runlocal' in arg:
    assert setup.total_steps <= 4 and setup.global_batch <= 16


@pytest.mark.parametrize('model', ['softmax', 'svm', 'mlp2', 'mlp3', 'convnet'])
def test_digits_runlocal_runs(tmp_path, model):
  config = load('digits_baselines.py').get_config(f'model={model},runlocal')
  config.total_steps = 2
  config.eval_every = 2
  setup = train.build(config)
  record = train.train_and_evaluate(setup, str(tmp_path), progress_stream=open(os.devnull, 'w'))
  assert record['val/count'] == 360
  assert record['train/loss'] > 0 and jax.numpy.isfinite(record['train/loss'])


def test_default_runlocal_builds():
  config = load('default.py').get_config('runlocal')
  setup = train.build(config)
  assert setup.total_steps == 10 and setup.info.image_shape == (32, 32, 1)
