"""TFDS datasets through tf.data: deterministic, resumable, per-host sharded.

Each host reads its own `tfds.even_splits(split, n=process_count)` shard in
file order (`shuffle_files=False`, deterministic tf.data), so its example
order is fixed. Training streams epochs e = 0, 1, ...: epoch e is the shard
shuffled with a buffer seeded by (seed, e) (with a buffer as large as the
shard this is a uniform permutation), and the epochs are concatenated.
Stream position g therefore sits in epoch g div N at offset g mod N
(N = shard size), so resuming at step k starts at epoch kB/P div N and skips
fewer than N encoded records (images are decoded after the skip) instead of
replaying k batches (with `cache`, decoded examples are cached and the
skip only reads memory after the first epoch). Augmentation is stateless,
keyed by (seed, process_index, g): Inception crops in tf.data
(`stateless_sample_distorted_bounding_box`), flips and CIFAR crops in the
numpy `arrays.BatchStage` every source shares, so a resumed iterator
redraws exactly the same augmentation.

TensorFlow is hidden from accelerators (`tf.config.set_visible_devices([],
'GPU')`) so it never competes with JAX for their memory.
"""
from __future__ import annotations

import functools
from typing import Iterator, Optional

import ml_collections
import numpy as np

from experiments.data import arrays
from experiments.data import randaugment as ra
from experiments.data.source import DatasetInfo

Batch = dict[str, np.ndarray]

_INT64_MAX = np.iinfo(np.int64).max
_EVAL_CROP = 0.875

# Published per-channel statistics of the train splits, on pixels in [0, 1].
_STATS = {
    'cifar10': ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    'cifar100': ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    'imagenet': ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}


@functools.lru_cache(maxsize=None)
def _tf():
  """Imports TensorFlow once, hidden from GPUs/TPUs."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  try:
    tf.config.set_visible_devices([], 'GPU')
    tf.config.set_visible_devices([], 'TPU')
  except (RuntimeError, ValueError):  # already initialised, or no such device type
    pass
  return tf


def _plain(fn):
  """Marks a tf.data function as plain TF (no Python control flow on tensors).

  Skipping AutoGraph's source transformation saves seconds per pipeline.
  """
  return _tf().autograph.experimental.do_not_convert(fn)


def _tfds():
  _tf()
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  return tfds


def builder(cfg: ml_collections.ConfigDict):
  """The TFDS builder for `cfg.name`; ValueError if TFDS does not know it."""
  tfds = _tfds()
  try:
    return tfds.builder(cfg.name, data_dir=cfg.data_dir)
  except tfds.core.registered.DatasetNotFoundError as e:
    raise ValueError(
        f"unknown dataset {cfg.name!r}; valid: digits, folder:PATH, or a TFDS name such as "
        "cifar10, cifar100, imagenet2012, mnist") from e


def _num_examples(b, split) -> int:
  """Examples in a (sub)split: from the metadata, else the dataset's cardinality."""
  try:
    n = b.info.splits[split].num_examples
    if n:
      return int(n)
  except (KeyError, ValueError, TypeError):
    pass
  try:
    n = int(b.as_dataset(split=split, shuffle_files=False).cardinality())
  except Exception as e:  # pylint: disable=broad-except  (TFDS raises many kinds)
    raise ValueError(
        f'TFDS dataset {b.name!r} split {split!r} is not available under data_dir='
        f'{b.data_dir!r} ({type(e).__name__}: {e}); prepare it first with '
        f'`tfds build {b.name}` (nothing is downloaded at run time)') from e
  if n < 0:
    raise ValueError(f'TFDS dataset {b.name!r} split {split!r} has unknown size')
  return n


def _features(b) -> tuple[int, tuple[Optional[int], ...]]:
  feats = b.info.features
  if 'image' not in feats or 'label' not in feats:
    raise ValueError(f'TFDS dataset {b.name!r} has features {list(feats)}; an image '
                     "classification dataset needs 'image' and 'label'")
  return int(feats['label'].num_classes), tuple(feats['image'].shape)


def get_info(cfg: ml_collections.ConfigDict) -> DatasetInfo:
  b = builder(cfg)
  num_classes, shape = _features(b)
  channels = cfg.channels or shape[-1] or 3
  return DatasetInfo(num_classes, (cfg.image_size, cfg.image_size, channels),
                     _num_examples(b, cfg.train_split), _num_examples(b, cfg.eval_split))


def default_stats(name: str, channels: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
  """Published mean/std for CIFAR and ImageNet-derived sets; 0.5/0.5 otherwise."""
  key = 'imagenet' if name.startswith('imagenet') else name.split(':')[0].split('/')[0]
  if key in _STATS and channels == 3:
    return _STATS[key]
  return (0.5,) * channels, (0.5,) * channels


def process_split(split: str, process_index: int, process_count: int):
  """This host's part of `split` (`tfds.even_splits`), or the split itself for one host."""
  if process_count == 1:
    return split
  return _tfds().even_splits(split, n=process_count)[process_index]


def _source(cfg, b, split, cache: bool):
  """(image, label) in file order; images still encoded unless cached decoded."""
  tf, tfds = _tf(), _tfds()
  ds = b.as_dataset(split=split, shuffle_files=False,
                    decoders={'image': tfds.decode.SkipDecoding()},
                    read_config=tfds.ReadConfig(shuffle_seed=0, try_autocache=False))
  ds = ds.map(_plain(lambda ex: {'image': ex['image'], 'label': ex['label']}))
  options = tf.data.Options()
  options.deterministic = True
  ds = ds.with_options(options)
  if cache:
    channels = _features(b)[1][-1] or 3
    ds = ds.map(_plain(lambda ex: {'image': _decode(ex['image'], channels),
                                   'label': ex['label']}),
                num_parallel_calls=tf.data.AUTOTUNE).cache()
  return ds


def _decode(image, channels: int):
  tf = _tf()
  if image.dtype == tf.string:
    image = tf.io.decode_image(image, channels=channels, expand_animations=False)
  return image


class _Preprocess:
  """Preprocessing in two stages, so most work runs once per batch.

  `example` (tf.data, per example, in parallel): decode, and where needed
  the Inception crop (stateless, seeded per example) or central crop and
  the resize to `image_size`, then RandAugment on uint8 (training, when
  `data.randaugment` is set; seeded per example). `stage` (numpy, per batch): the
  `arrays.BatchStage` every source shares: CIFAR pad-and-crop and flips
  keyed by (seed, stream position), channel conversion, (x - mean) / std.
  """

  def __init__(self, cfg: ml_collections.ConfigDict, native_shape: tuple[Optional[int], ...],
               channels: int, mean, std):
    self.cfg = cfg
    self.native_shape = native_shape
    self.native_channels = native_shape[-1] or 3
    self.channels = channels
    self.stage = arrays.BatchStage(cfg, channels, mean, std)
    self.randaugment = arrays.RandAugmentStage(cfg, mean, self.native_channels)
    size = cfg.image_size
    # Decoded fixed-size images at the target size need no per-example work.
    self.fixed = tuple(native_shape[:2]) == (size, size) and cfg.augment != 'inception'

  def example(self, image, train: bool, seed=None):
    """Decoded [S, S, native C] image: uint8 if untouched, else float32 in [0, 1]."""
    tf = _tf()
    cfg, size = self.cfg, self.cfg.image_size
    x = _decode(image, self.native_channels)
    if all(self.native_shape):  # fixed-size datasets (CIFAR, MNIST): static shapes
      x = tf.ensure_shape(x, self.native_shape)
    if self.fixed:
      return self._randaugment(x, train, seed)
    x = _to_unit(x)
    if cfg.augment == 'inception':
      if train:
        begin, extent, _ = tf.image.stateless_sample_distorted_bounding_box(
            tf.shape(x), bounding_boxes=tf.zeros([1, 0, 4]), seed=seed,
            min_object_covered=0.0, aspect_ratio_range=(3 / 4, 4 / 3),
            area_range=(0.08, 1.0), max_attempts=10, use_image_if_no_bounding_boxes=True)
        x = tf.slice(x, begin, extent)
      else:
        x = tf.image.central_crop(x, _EVAL_CROP)
    x = tf.image.resize(x, [size, size], method='bilinear', antialias=True)
    x = tf.ensure_shape(x, [size, size, self.native_channels])
    return self._randaugment(x, train, seed)

  def _randaugment(self, x, train: bool, seed):
    """RandAugment on the uint8 image (x rounded from [0, 1] if float); else x unchanged."""
    tf = _tf()
    stage = self.randaugment
    if not train or stage.policy is None:
      return x
    if x.dtype != tf.uint8:
      x = tf.cast(tf.clip_by_value(tf.round(x * 255.0), 0.0, 255.0), tf.uint8)
    return ra.augment_image(x, seed, stage.policy, stage.fill, stage.interpolation)


def _to_unit(x):
  """Pixels to float32 in [0, 1]; uint8 as x / 255 exactly like the numpy path."""
  tf = _tf()
  if x.dtype == tf.uint8:
    return tf.cast(x, tf.float32) / 255.0
  if x.dtype == tf.float32:
    return x
  return tf.image.convert_image_dtype(x, tf.float32)


def _pipeline_parts(cfg):
  b = builder(cfg)
  _, shape = _features(b)
  native = shape[-1] or 3
  channels = cfg.channels or native
  if cfg.mean is not None:
    mean = np.broadcast_to(np.asarray(cfg.mean, np.float32), (channels,))
    std = np.broadcast_to(np.asarray(cfg.std, np.float32), (channels,))
  else:
    mean, std = default_stats(cfg.name, channels)
  return b, _Preprocess(cfg, shape, channels, mean, std)


def train_iterator(cfg: ml_collections.ConfigDict, global_batch_size: int, seed: int,
                   start_step: int, num_local_devices: int, process_index: int,
                   process_count: int) -> Iterator[Batch]:
  """Infinite, resumable training batches of this host (see module docstring)."""
  tf = _tf()
  b, prep = _pipeline_parts(cfg)
  local = global_batch_size // process_count
  base = _source(cfg, b, process_split(cfg.train_split, process_index, process_count),
                 cfg.cache)
  n = int(base.cardinality())
  if n <= 0:
    raise ValueError(f'train split {cfg.train_split!r} of {cfg.name!r} is empty or of unknown '
                     f'size ({n}) on process {process_index}')
  buffer = min(cfg.shuffle_buffer, n)
  start = start_step * local
  first_epoch, skip = divmod(start, n)
  seed = int(seed)

  def epoch(e):
    shuffle_seed = tf.constant(seed % (1 << 31), tf.int64) * 1_000_003 + e
    return base.shuffle(buffer, seed=shuffle_seed, reshuffle_each_iteration=False)

  stream = tf.data.Dataset.range(first_epoch, _INT64_MAX).flat_map(_plain(epoch)).skip(skip)
  positions = tf.data.Dataset.range(start, _INT64_MAX)
  key = (seed * 1_000_003 + process_index) % (1 << 62)

  def per_example(g, ex):
    seed = tf.stack([tf.constant(key, tf.int64), g])
    return {'image': prep.example(ex['image'], train=True, seed=seed),
            'label': tf.cast(ex['label'], tf.int32), 'position': g}

  ds = tf.data.Dataset.zip(positions, stream)
  if prep.fixed and cfg.cache and prep.randaugment.policy is None:
    # Decoded, right size: nothing to do per example.
    ds = ds.map(_plain(lambda g, ex: {'image': ex['image'], 'position': g,
                                      'label': tf.cast(ex['label'], tf.int32)}))
  else:
    ds = ds.map(_plain(per_example), num_parallel_calls=tf.data.AUTOTUNE)
  ds = ds.batch(local, drop_remainder=True).prefetch(2)
  return _finish_train(ds.as_numpy_iterator(), prep.stage, key, num_local_devices)


def _finish_train(batches, stage: arrays.BatchStage, key: int,
                  num_local_devices: int) -> Iterator[Batch]:
  for batch in batches:
    image = stage(batch['image'], batch['position'], key, train=True)
    yield {'image': arrays.to_devices(image, num_local_devices),
           'label': arrays.to_devices(batch['label'], num_local_devices)}


class EvalIterable:
  """Re-iterable padded pass over a split; each `iter()` is a fresh pass.

  `local_batch=None` makes one batch holding the largest host shard padded
  to a multiple of the device count (the full-batch mode).
  """

  def __init__(self, cfg: ml_collections.ConfigDict, split: str, num_examples: int,
               local_batch: Optional[int], num_local_devices: int, process_index: int,
               process_count: int):
    del num_examples  # the shard sizes below are what matter
    self._cfg = cfg
    self._b, self._prep = _pipeline_parts(cfg)
    self._split = process_split(split, process_index, process_count)
    sizes = [_num_examples(self._b, process_split(split, p, process_count))
             for p in range(process_count)]
    self._n = sizes[process_index]
    largest = max(sizes)
    self._local, self._batches = arrays.eval_batching(largest, local_batch, num_local_devices)
    self._d = num_local_devices
    self._dataset = None

  def __len__(self) -> int:
    return self._batches

  def __iter__(self) -> Iterator[Batch]:
    if self._dataset is None:
      self._dataset = self._build()
    for batch in self._dataset.as_numpy_iterator():
      mask = batch['mask']
      image = self._prep.stage(batch['image'], None, 0, train=False)
      image[~mask] = 0.0
      yield {'image': arrays.to_devices(image, self._d),
             'label': arrays.to_devices(batch['label'], self._d),
             'mask': arrays.to_devices(mask, self._d)}

  def _build(self):
    """The pass as a tf.data pipeline, built once (with `cfg.cache`, decoded once)."""
    tf = _tf()
    prep, size = self._prep, self._cfg.image_size
    ds = _source(self._cfg, self._b, self._split, cache=self._cfg.cache)
    ds = ds.map(_plain(lambda ex: {'image': _to_unit(prep.example(ex['image'], train=False)),
                                   'label': tf.cast(ex['label'], tf.int32),
                                   'mask': tf.constant(True)}),
                num_parallel_calls=tf.data.AUTOTUNE)
    pad = self._batches * self._local - self._n
    filler = tf.data.Dataset.from_tensors(
        {'image': tf.zeros([size, size, prep.native_channels], tf.float32),
         'label': tf.constant(0, tf.int32), 'mask': tf.constant(False)}).repeat(pad)
    ds = ds.concatenate(filler).batch(self._local, drop_remainder=True)
    return ds.prefetch(2)
