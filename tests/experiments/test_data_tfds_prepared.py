"""Input pipeline on a real, prepared TFDS dataset (built here, offline).

`mock_data` ignores split slicing, so per-host sharding with
`tfds.even_splits`, metadata split sizes and PNG decoding of real records
are checked on a tiny dataset generated into a temporary data_dir.
"""
import itertools

import numpy as np
import pytest
import tensorflow_datasets as tfds

from experiments import data

_SIZES = {'train': 30, 'test': 21}


class VisoptTinyImages(tfds.core.GeneratorBasedBuilder):
  """16x16 RGB noise images with 3 labels, fixed by seed."""

  VERSION = tfds.core.Version('1.0.0')
  # No source-file lookup (it needs `importlib_resources`, absent here); the
  # builder has no checksums or metadata files next to it anyway.
  code_path = None

  def _info(self):
    return tfds.core.DatasetInfo(
        builder=self,
        features=tfds.features.FeaturesDict({
            'image': tfds.features.Image(shape=(16, 16, 3)),
            'label': tfds.features.ClassLabel(num_classes=3),
        }),
        supervised_keys=('image', 'label'))

  def _split_generators(self, dl_manager):
    del dl_manager
    return {name: self._generate_examples(name) for name in _SIZES}

  def _generate_examples(self, split):
    rng = np.random.default_rng(len(split))
    for i in range(_SIZES[split]):
      yield i, {'image': rng.integers(0, 256, (16, 16, 3), dtype=np.uint8),
                'label': int(i % 3)}


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory):
  path = str(tmp_path_factory.mktemp('tfds'))
  VisoptTinyImages(data_dir=path).download_and_prepare()
  return path


def _cfg(data_dir, **kw):
  cfg = data.default_config()
  cfg.name, cfg.image_size, cfg.data_dir = 'visopt_tiny_images', 16, data_dir
  cfg.mean, cfg.std = (0.0,), (1.0,)
  for k, v in kw.items():
    cfg[k] = v
  return cfg


def _raw(data_dir, split):
  ds = tfds.load('visopt_tiny_images', split=split, data_dir=data_dir, shuffle_files=False)
  examples = list(tfds.as_numpy(ds))
  return np.stack([e['image'] for e in examples]).astype(np.float32) / 255


def _rows(x):
  return sorted(r.tobytes() for r in x.reshape(x.shape[0], -1))


def _flat(batch, key):
  return batch[key].reshape((-1,) + batch[key].shape[2:])


def test_info_reads_split_sizes_from_metadata(data_dir):
  assert data.get_info(_cfg(data_dir)) == data.DatasetInfo(3, (16, 16, 3), 30, 21)
  assert data.get_info(_cfg(data_dir, eval_split='train[:50%]')).num_eval == 15


@pytest.mark.parametrize('process_count', [1, 2, 4])
def test_eval_over_hosts_sees_every_example_once(data_dir, process_count):
  seen, lengths = [], []
  for p in range(process_count):
    evals = data.make_eval_iterator(_cfg(data_dir), 4 * process_count, num_local_devices=2,
                                    process_index=p, process_count=process_count)
    batches = list(evals)
    lengths.append(len(batches))
    for b in batches:
      seen.append(_flat(b, 'image')[_flat(b, 'mask')])
  assert len(set(lengths)) == 1
  assert _rows(np.concatenate(seen)) == _rows(_raw(data_dir, 'test'))


def test_train_hosts_partition_each_epoch_and_resume(data_dir):
  cfg = _cfg(data_dir)
  parts = []
  for p in range(2):  # 15 examples per host; local batch 5 -> 3 steps per epoch
    it = data.make_train_iterator(cfg, 10, seed=2, num_local_devices=1, process_index=p,
                                  process_count=2)
    parts.append(np.concatenate([_flat(b, 'image') for b in itertools.islice(it, 3)]))
  assert _rows(np.concatenate(parts)) == _rows(_raw(data_dir, 'train'))
  cfg.augment = 'cifar'
  ref = list(itertools.islice(data.make_train_iterator(cfg, 8, 4, num_local_devices=2), 6))
  resumed = list(itertools.islice(
      data.make_train_iterator(cfg, 8, 4, start_step=3, num_local_devices=2), 3))
  for a, b in zip(ref[3:], resumed):  # step 3 straddles the epoch boundary at 30
    np.testing.assert_array_equal(a['image'], b['image'])
    np.testing.assert_array_equal(a['label'], b['label'])


def test_unprepared_dataset_is_a_clear_error(tmp_path):
  with pytest.raises(ValueError, match='prepare it first'):
    data.get_info(_cfg(str(tmp_path)))
