"""The fine-tuning configs: the papers' recipes, and they build from a checkpoint of another
geometry (a small random one written here: the real weights are not on this machine).

TFDS data is mocked (no download); the models are shrunk by `runlocal`.
"""
from __future__ import annotations

import jax
import numpy as np
import pytest
import tensorflow_datasets as tfds

import vision
from experiments import train
from experiments.configs import segformer_ade20k
from experiments.configs import swin_finetune
from experiments.configs import vit_finetune_cifar10
from tests.experiments.test_init_from import _write_workdir
from tests.experiments.test_seg_train import _fake_ade

MOCK = dict(num_examples=16, policy=tfds.testing.MockPolicy.USE_CODE)


def _workdir(tmp_path, name: str, size: int, **kw) -> str:
  """A visopt workdir holding random weights of `name` at `size` px."""
  module = vision.create_model(name, **kw)
  variables = jax.device_get(jax.jit(module.init)(
      jax.random.PRNGKey(1), np.zeros((1, size, size, 3), np.float32)))
  path = str(tmp_path / name)
  _write_workdir(path, {3: variables})
  return path, variables


def test_vit_cifar10_recipe_and_build_from_another_resolution_and_class_count(tmp_path):
  c = vit_finetune_cifar10.get_config()
  assert (c.model.name, c.data.image_size, c.model.overrides.img_size) == (
      'vit_base_patch16_224', 384, 384)
  assert (c.optimizer.name, c.optimizer.learning_rate, c.optimizer.momentum) == ('sgd', 0.03, 0.9)
  assert (c.schedule.name, c.schedule.warmup_steps, c.grad_clip_norm) == ('cosine', 500, 1.0)
  assert (c.total_steps, c.batch_size, c.optimizer.get('weight_decay', 0.0)) == (10_000, 512, 0.0)
  assert c.init_from.path.endswith('.npz') and c.init_from.head == 'auto'
  c = vit_finetune_cifar10.get_config('runlocal')
  source, variables = _workdir(tmp_path, 'vit_base_patch16_224', 16, img_size=16, patch_size=16,
                               depth=2, embed_dim=48, num_heads=3, num_classes=21)
  c.init_from.path = source
  c.model.overrides.patch_size = 16
  with tfds.testing.mock_data(**MOCK):
    setup = train.build(c, devices=jax.local_devices()[:1])
  loaded = setup.initial_variables['params']
  assert loaded['head']['kernel'].shape == (48, 10) and not np.any(loaded['head']['kernel'])
  assert loaded['pos_embed'].shape == (1, 1 + 2 * 2, 48)  # 1x1 grid -> 2x2 at 32 px
  np.testing.assert_array_equal(loaded['blocks_1']['mlp']['fc2']['kernel'],
                                variables['params']['blocks_1']['mlp']['fc2']['kernel'])


def test_swin_recipe_and_build_from_another_window(tmp_path):
  c = swin_finetune.get_config()
  assert (c.data.image_size, c.model.overrides.img_size, c.model.overrides.window_size) == (
      384, 384, 12)
  assert (c.optimizer.name, c.optimizer.learning_rate, c.optimizer.weight_decay) == (
      'adamw', 1e-5, 1e-8)
  assert (c.schedule.name, c.total_epochs, c.batch_size) == ('constant', 30.0, 1024)
  assert c.init_from.path == swin_finetune.CHECKPOINT
  assert c.model.overrides.drop_path_rate == 0.1
  c = swin_finetune.get_config('runlocal')
  small = dict(embed_dim=24, depths=(1, 1, 1, 1), num_heads=(1, 1, 1, 1))
  source, _ = _workdir(tmp_path, 'swin_tiny_patch4_window7_224', 64, img_size=64, window_size=2,
                       num_classes=7, **small)
  c.init_from.path = source
  c.data.image_size = 96
  c.model.overrides.update(dict(img_size=96, window_size=3, **small))
  with tfds.testing.mock_data(**MOCK):
    setup = train.build(c, devices=jax.local_devices()[:1])
  tables = [v for k, v in vision.pretrained.flatten(setup.initial_variables).items()
            if k.endswith('relative_position_bias_table')]
  assert tables and all(t.shape[0] == (2 * 3 - 1) ** 2 for t in tables)  # window 2 -> 3


def test_segformer_ade20k_initialises_mit_from_imagenet_weights(tmp_path):
  c = segformer_ade20k.get_config()
  assert c.init_from.path == 'hf://nvidia/mit-b0' and c.model.name == 'segformer_b0'
  assert segformer_ade20k.get_config('variant=b2').init_from.path == 'hf://nvidia/mit-b2'
  assert segformer_ade20k.get_config('runlocal').init_from.path == ''
  small = dict(embed_dims=(16, 16, 32, 32), depths=(1, 1, 1, 1), num_heads=(1, 1, 1, 1))
  source, variables = _workdir(tmp_path, 'mit_b0', 64, img_size=64, num_classes=1000, **small)
  c = segformer_ade20k.get_config(f'runlocal,init={source}')
  c.model.overrides.update(dict(decoder_dim=32, drop_path_rate=0.0, **small))
  c.data.train_split, c.data.eval_split = 'train', 'test'
  with tfds.testing.mock_data(policy=tfds.testing.MockPolicy.USE_CODE, as_dataset_fn=_fake_ade):
    setup = train.build(c, devices=jax.local_devices()[:1])
  got = vision.pretrained.flatten(setup.initial_variables['params'])
  want = vision.pretrained.flatten(variables['params'])
  encoder = [k for k in got if k.startswith('backbone/')]
  assert encoder and all(np.array_equal(got[k], want[k[len('backbone/'):]]) for k in encoder)
  assert any(k.startswith('decode_head/') for k in got)


@pytest.mark.parametrize('module', [vit_finetune_cifar10, swin_finetune, segformer_ade20k])
def test_docstring_gives_command_and_paper_number(module):
  assert 'python -m experiments.main --config=experiments/configs/' in module.__doc__
  assert module.RESULT.startswith('paper')
