"""The DeiT-S and Swin recipe configs: the papers' hyperparameters, valid sections, they build."""
from __future__ import annotations

import ml_collections
import pytest
import tensorflow_datasets as tfds

from experiments import early_stopping
from experiments import mixing
from experiments import train
from experiments import weight_averaging
from experiments.configs import deit_small_imagenet
from experiments.configs import swin_imagenet
from experiments.data import config as data_config
from experiments.data import randaugment


def test_deit_small_is_table_9():
  c = deit_small_imagenet.get_config()
  assert c.model.name == 'vit_small_patch16_224' and c.model.overrides.drop_path_rate == 0.1
  assert (c.batch_size, c.total_epochs, c.schedule.warmup_epochs) == (1024, 300.0, 5.0)
  assert c.optimizer.name == 'adamw' and c.optimizer.weight_decay == 0.05
  assert c.optimizer.learning_rate == pytest.approx(5e-4 * 1024 / 512)
  assert c.label_smoothing == 0.1 and c.grad_clip_norm is None
  assert randaugment.parse(c.data.randaugment) == randaugment.Policy(
      num_layers=2, magnitude=9.0, magnitude_std=0.5, increasing=True)
  assert c.data.random_erasing == 0.25 and c.data.cutout == 0
  mix = mixing.from_experiment(c, 1000)
  assert (mix.mixup_alpha, mix.cutmix_alpha, mix.label_smoothing) == (0.8, 1.0, 0.1)
  assert weight_averaging.transforms(c) == []  # DeiT reports the raw weights
  assert early_stopping.EarlyStopping.from_config(c.early_stopping) is None
  data_config.validate(c.data)


@pytest.mark.parametrize('variant,drop_path', [('T', 0.2), ('S', 0.3), ('B', 0.5)])
def test_swin_recipe(variant, drop_path):
  c = swin_imagenet.get_config(f'variant={variant}')
  assert c.model.overrides.drop_path_rate == drop_path
  assert (c.schedule.warmup_epochs, c.grad_clip_norm) == (20.0, 5.0)
  assert c.optimizer.learning_rate == pytest.approx(1e-3)
  assert c.data.randaugment == 'rand-m9-mstd0.5-inc1' and c.mixup.cutmix_alpha == 1.0
  assert c.ema.decay is None  # the paper: no EMA


@pytest.mark.parametrize('module', [deit_small_imagenet, swin_imagenet])
def test_runlocal_builds_and_overrides_reach_every_section(module):
  c = module.get_config('runlocal')
  with tfds.testing.mock_data(num_examples=16, policy=tfds.testing.MockPolicy.USE_CODE):
    setup = train.build(c)
  assert setup.total_steps <= 4
  # Every recipe knob is a typed ConfigDict field, so --config.<key>=value reaches it.
  for key, value in (('mixup.mode', 'elem'), ('ema.decay', 0.999), ('polyak.start_step', 10),
                     ('early_stopping.metric', 'val/accuracy'), ('data.cutout', 8)):
    section, name = key.split('.')
    c[section][name] = value
    assert c[section][name] == value
  with pytest.raises(TypeError):
    c.mixup.prob = 'often'
  assert isinstance(c.early_stopping, ml_collections.ConfigDict)


@pytest.mark.parametrize('name', ['vit_imagenet', 'pvt_imagenet', 'mit_imagenet'])
def test_deit_recipe_configs_carry_its_regularization(name):
  """ViT/DeiT, PVT and MiT trained with DeiT's recipe: RandAugment, Mixup/CutMix, erasing."""
  import importlib  # pylint: disable=g-import-not-at-top
  module = importlib.import_module(f'experiments.configs.{name}')
  c = module.get_config()
  assert c.data.randaugment == 'rand-m9-mstd0.5-inc1' and c.data.random_erasing == 0.25
  assert (c.mixup.mixup_alpha, c.mixup.cutmix_alpha, c.label_smoothing) == (0.8, 1.0, 0.1)
  assert 'cannot' not in module.__doc__ and 'no RandAugment' not in module.__doc__
