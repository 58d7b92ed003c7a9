"""RandAugment, random erasing and Cutout wired into the input pipeline (digits and mock TFDS)."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import tensorflow_datasets as tfds

from experiments import data
from experiments.data import config as config_lib


def _digits(**kw):
  cfg = data.default_config()
  cfg.image_size = 16
  cfg.augment = 'shift'
  for k, v in kw.items():
    cfg[k] = v
  return cfg


ON = dict(randaugment='rand-m9-mstd0.5-inc1', random_erasing=0.25, cutout=6)


def _take(cfg, n, start_step=0, batch=32):
  it = data.make_train_iterator(cfg, batch, seed=3, start_step=start_step, num_local_devices=2)
  return [b['image'] for b in itertools.islice(it, n)]


def test_digits_train_stream_is_deterministic_resumable_and_augmented():
  cfg = _digits(**ON)
  first = _take(cfg, 3)
  again = _take(cfg, 3)
  resumed = _take(cfg, 1, start_step=2)
  for a, b in zip(first, again):
    np.testing.assert_array_equal(a, b)
  np.testing.assert_array_equal(resumed[0], first[2])
  plain = _take(_digits(), 3)
  changed = np.mean([np.any(a != b, axis=(2, 3, 4)).mean() for a, b in zip(first, plain)])
  assert changed > 0.9  # cutout alone hits every image
  # Cutout zeros 6x6 squares (clipped) in normalized space: exact zeros appear.
  assert np.mean((first[0] == 0).all(-1).sum((2, 3)) >= 9) > 0.9


def test_each_switch_alone_changes_training_images_but_not_evaluation():
  plain_eval = next(iter(data.make_eval_iterator(_digits(), 32, 2)))['image']
  plain = _take(_digits(), 1)[0]
  for key, value in ON.items():
    cfg = _digits(**{key: value})
    assert np.any(_take(cfg, 1)[0] != plain), key
    ev = next(iter(data.make_eval_iterator(cfg, 32, 2)))['image']
    np.testing.assert_array_equal(ev, plain_eval)


def test_randaugment_off_is_bit_identical_to_default():
  a = _take(_digits(randaugment=None, random_erasing=0.0, cutout=0), 2)
  b = _take(_digits(), 2)
  for x, y in zip(a, b):
    np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize('key,value,msg', [
    ('randaugment', 'rand-m9-q1', 'unknown section'),
    ('randaugment', 'augmix-m9', "timm's"),
    ('randaugment_interpolation', 'lanczos', 'valid: bicubic'),
    ('random_erasing', 1.5, r'\[0, 1\]'),
    ('random_erasing', -0.1, r'\[0, 1\]'),
    ('cutout', -2, 'cutout'),
])
def test_bad_values_raise_one_line(key, value, msg):
  cfg = _digits(**{key: value})
  with pytest.raises(ValueError, match=msg) as e:
    config_lib.validate(cfg)
  assert '\n' not in str(e.value) and f'data.{key}' in str(e.value)


def test_tfds_path_applies_randaugment_per_example():
  with tfds.testing.mock_data(num_examples=16, policy=tfds.testing.MockPolicy.USE_CODE):
    cfg = data.default_config()
    cfg.name, cfg.image_size = 'cifar10', 32
    plain = next(data.make_train_iterator(cfg, 8, seed=0))['image']
    cfg.randaugment = 'rand-m9-n2-mstd0.5'
    cfg.randaugment_interpolation = 'random'
    first = next(data.make_train_iterator(cfg, 8, seed=0))['image']
    # Same examples in the same order; with p = 0.5 and two ops most images change.
    assert np.mean(np.any(first != plain, axis=(2, 3, 4))) > 0.5
