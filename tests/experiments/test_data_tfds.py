"""Input pipeline: TFDS through tf.data, on `tfds.testing.mock_data` (cifar10 spec).

Nothing downloads: with no metadata on disk `mock_data` falls back to
`MockPolicy.USE_CODE`, building cifar10's features from its code and
yielding `_N` deterministic random examples for every (sub)split.
"""
import itertools

import numpy as np
import pytest
import tensorflow_datasets as tfds

from experiments import data
from experiments.data import tfds_source

_N = 40
_CIFAR_MEAN = np.array([0.4914, 0.4822, 0.4465], np.float32)
_CIFAR_STD = np.array([0.2470, 0.2435, 0.2616], np.float32)


@pytest.fixture(scope='module', autouse=True)
def mock_cifar10():
  with tfds.testing.mock_data(num_examples=_N, policy=tfds.testing.MockPolicy.USE_CODE):
    yield


@pytest.fixture(scope='module')
def raw_test():
  """The mock 'test' split as (uint8 images, labels), in file order."""
  ds = tfds.load('cifar10', split='test', shuffle_files=False)
  examples = list(tfds.as_numpy(ds))
  return (np.stack([e['image'] for e in examples]),
          np.array([e['label'] for e in examples], np.int32))


def _cfg(**kw):
  cfg = data.default_config()
  cfg.name, cfg.image_size = 'cifar10', 32
  for k, v in kw.items():
    cfg[k] = v
  return cfg


def _flat(batch, key):
  return batch[key].reshape((-1,) + batch[key].shape[2:])


def _rows(x):
  return sorted(r.tobytes() for r in x.reshape(x.shape[0], -1))


def test_info_and_train_batch_contract():
  assert data.get_info(_cfg()) == data.DatasetInfo(10, (32, 32, 3), _N, _N)
  batch = next(data.make_train_iterator(_cfg(augment='cifar'), 16, seed=0, num_local_devices=8))
  assert batch['image'].shape == (8, 2, 32, 32, 3) and batch['image'].dtype == np.float32
  assert batch['label'].shape == (8, 2) and batch['label'].dtype == np.int32
  assert np.all((batch['label'] >= 0) & (batch['label'] < 10))


def test_eval_is_every_example_once_normalized_with_cifar_stats(raw_test):
  images, labels = raw_test
  evals = data.make_eval_iterator(_cfg(), 16, num_local_devices=8)
  batches = list(evals)
  assert len(evals) == len(batches) == 3  # 40 = 16 + 16 + 8 real, 8 padded
  mask = np.concatenate([_flat(b, 'mask') for b in batches])
  assert mask.sum() == _N and not mask[_N:].any()
  got = np.concatenate([_flat(b, 'image') for b in batches])
  want = (images.astype(np.float32) / 255 - _CIFAR_MEAN) / _CIFAR_STD
  np.testing.assert_allclose(got[:_N], want, atol=1e-5)
  assert np.all(got[_N:] == 0)
  np.testing.assert_array_equal(np.concatenate([_flat(b, 'label') for b in batches])[:_N],
                                labels)


def test_train_epochs_permute_and_resume_bit_identically(raw_test):
  cfg = _cfg(train_split='test', augment='none', mean=(0.0,), std=(1.0,))
  it = data.make_train_iterator(cfg, 10, seed=5, num_local_devices=2)
  steps = list(itertools.islice(it, 8))  # 4 steps per epoch of 40
  epoch = lambda s: np.concatenate([_flat(b, 'image') for b in s])  # noqa: E731
  want = _rows(raw_test[0].astype(np.float32) / 255)
  assert _rows(epoch(steps[:4])) == want and _rows(epoch(steps[4:])) == want
  assert not np.array_equal(epoch(steps[:4]), epoch(steps[4:]))
  cfg.augment = 'cifar'
  ref = list(itertools.islice(data.make_train_iterator(cfg, 12, 5, num_local_devices=2), 8))
  for start in (3, 6):  # inside the first epoch; across the epoch boundary at 40
    resumed = list(itertools.islice(
        data.make_train_iterator(cfg, 12, 5, start_step=start, num_local_devices=2), 2))
    for a, b in zip(ref[start:], resumed):
      np.testing.assert_array_equal(a['image'], b['image'])
      np.testing.assert_array_equal(a['label'], b['label'])
  plain = next(data.make_train_iterator(_cfg(train_split='test', mean=(0.0,), std=(1.0,)),
                                        12, 5, num_local_devices=2))
  np.testing.assert_array_equal(plain['label'], ref[0]['label'])
  assert np.any(plain['image'] != ref[0]['image'])


def test_cache_gives_the_same_stream():
  cfg = _cfg(augment='cifar')
  a = list(itertools.islice(data.make_train_iterator(cfg, 16, 1), 4))
  cfg.cache = True
  b = list(itertools.islice(data.make_train_iterator(cfg, 16, 1), 4))
  for x, y in zip(a, b):
    np.testing.assert_array_equal(x['image'], y['image'])


def test_inception_crop_channels_and_full_batch():
  cfg = _cfg(augment='inception', image_size=24, channels=1)
  batch = next(data.make_train_iterator(cfg, 8, 0, num_local_devices=4))
  assert batch['image'].shape == (4, 2, 24, 24, 1)
  assert np.isfinite(batch['image']).all()
  evals = list(data.make_eval_iterator(cfg, 8, num_local_devices=4))
  assert evals[0]['image'].shape == (4, 2, 24, 24, 1)
  full = data.make_train_iterator(_cfg(), 0, 0, num_local_devices=8, full_batch=True)
  a, b = next(full), next(full)
  assert a['image'].shape == (8, 5, 32, 32, 3) and a['mask'].sum() == _N
  np.testing.assert_array_equal(a['image'], b['image'])


def test_processes_read_even_splits():
  assert tfds_source.process_split('train', 1, 2) == tfds.even_splits('train', n=2)[1]
  assert tfds_source.process_split('train', 0, 1) == 'train'
  lengths = [len(data.make_eval_iterator(_cfg(), 16, 4, p, 2)) for p in range(2)]
  assert lengths[0] == lengths[1]
  batch = next(data.make_train_iterator(_cfg(), 16, 0, num_local_devices=4, process_index=1,
                                        process_count=2))
  assert batch['image'].shape == (4, 2, 32, 32, 3)


def test_unknown_dataset_and_bad_batch():
  with pytest.raises(ValueError, match=r"unknown dataset 'no_such_set'.*digits, folder:PATH"):
    data.get_info(_cfg(name='no_such_set'))
  with pytest.raises(ValueError, match='not divisible'):
    data.make_train_iterator(_cfg(), 12, 0, num_local_devices=8)


def test_default_stats():
  np.testing.assert_allclose(tfds_source.default_stats('cifar10', 3), [_CIFAR_MEAN, _CIFAR_STD])
  assert tfds_source.default_stats('imagenet2012', 3)[1] == (0.229, 0.224, 0.225)
  assert tfds_source.default_stats('mnist', 1) == ((0.5,), (0.5,))
