"""The input pipeline's public entry points: info, train and eval iterators.

One contract for every source (digits, `folder:PATH`, TFDS):

- train batches: `dict(image=float32[D, B/D, H, W, C], label=int32[D, B/D])`
  with D local devices and B = global_batch_size / process_count per
  process; infinite; the sequence is a pure function of (cfg, seed, global
  batch, process split), and `start_step=k` yields exactly what a fresh
  iterator yields from step k on.
- eval batches: the same plus `mask=bool[D, B/D]`; one pass over the eval
  split, the last batch zero-padded and `mask` false on the padding, so
  every example is counted exactly once.
- full batch (`full_batch=True`, for second-order optimizers): the whole
  train split of this process in a fixed order, padded to a multiple of D
  with `mask`, repeated every step; no shuffling or augmentation.

In-memory sources run in numpy (`arrays.py`, no TensorFlow import, O(1)
resume); TFDS reads, shuffles, decodes and crops in tf.data
(`tfds_source.py`). RandAugment (`data.randaugment`, `randaugment.py`)
runs per example in TensorFlow on uint8 images after the crop and resize
(in the tf.data map for TFDS, on each batch for in-memory sources). Both
finish every batch in the same numpy `arrays.BatchStage` (CIFAR crop,
flip, channels, normalization, then random erasing and Cutout,
`erasing.py`), whose random draws are keyed by (seed, stream position),
never by iteration state; RandAugment's stateless seeds are too.

Extending to dense targets (segmentation): a source adds a
spatially aligned array next to `image` (e.g. an int32 `[B, S, S]` label
map); the geometric ops in `augment.py` (`pad_crop`, `flip`) already take
such arrays through `extra=` with the same draws, and must be resized with
nearest neighbour instead of `augment.resize`. The segmentation sources
(`shapes`, `segfolder:PATH`, TFDS `scene_parse150`) live in
`seg_pipeline.py` and are dispatched to first: their `label` is
int32 `[D, B/D, H, W]` (255 = ignore) and eval `mask` stays the
example-validity mask.
"""
from __future__ import annotations

import itertools
import math
import time
from typing import Iterable, Iterator

import ml_collections
import numpy as np

from experiments.data import arrays
from experiments.data import config as config_lib
from experiments.data import digits
from experiments.data import folder
from experiments.data import seg_pipeline
from experiments.data.source import ArraySplit
from experiments.data.source import DatasetInfo

Batch = dict[str, np.ndarray]

FOLDER_PREFIX = 'folder:'


def _kind(cfg: ml_collections.ConfigDict) -> str:
  config_lib.validate(cfg)
  if cfg.name == 'digits':
    return 'digits'
  if cfg.name.startswith(FOLDER_PREFIX):
    if not cfg.name[len(FOLDER_PREFIX):]:
      raise ValueError("data.name='folder:' needs a path: 'folder:PATH'")
    return 'folder'
  return 'tfds'


def _folder_path(cfg: ml_collections.ConfigDict) -> str:
  return cfg.name[len(FOLDER_PREFIX):]


def get_info(cfg: ml_collections.ConfigDict) -> DatasetInfo:
  """Classes, yielded image shape and split sizes; cheap (no decoding).

  Raises:
    ValueError: unknown dataset name or split, missing or empty folder, or a
      bad knob value in `cfg`.
  """
  if seg_pipeline.is_segmentation(cfg):
    return seg_pipeline.get_info(cfg)
  kind = _kind(cfg)
  size = cfg.image_size
  if kind == 'digits':
    channels = cfg.channels or 1
    classes = cfg.get('classes')
    return DatasetInfo(len(classes) if classes else digits.NUM_CLASSES, (size, size, channels),
                       digits.num_examples(cfg.train_split, classes, cfg.get('train_per_class')),
                       digits.num_examples(cfg.eval_split, classes))
  if kind == 'folder':
    path = _folder_path(cfg)
    train_files, _, classes = folder.list_split(path, cfg.train_split)
    eval_files, _, _ = folder.list_split(path, cfg.eval_split)
    channels = cfg.channels or folder.native_channels(train_files)
    return DatasetInfo(len(classes), (size, size, channels), len(train_files), len(eval_files))
  from experiments.data import tfds_source  # pylint: disable=g-import-not-at-top
  return tfds_source.get_info(cfg)


def _load_array_split(cfg: ml_collections.ConfigDict, split: str) -> ArraySplit:
  if _kind(cfg) == 'digits':
    per_class = cfg.get('train_per_class') if split == cfg.train_split else None
    return digits.load(split, cfg.get('classes'), per_class)
  return folder.load(_folder_path(cfg), split, cfg.image_size)


def _array_pipeline(cfg: ml_collections.ConfigDict, split: str) -> arrays.ArrayPipeline:
  """Pipeline for one in-memory split; default mean/std come from the train split."""
  info = get_info(cfg)
  channels = info.image_shape[-1]
  data = _load_array_split(cfg, split)
  if cfg.mean is not None:
    mean, std = _per_channel(cfg.mean, channels, 'mean'), _per_channel(cfg.std, channels, 'std')
  else:
    train = data if split == cfg.train_split else _load_array_split(cfg, cfg.train_split)
    stats_pipe = arrays.ArrayPipeline(cfg, train, np.zeros(channels), np.ones(channels), channels)
    mean, std = arrays.channel_stats(stats_pipe)
  return arrays.ArrayPipeline(cfg, data, mean, std, channels)


def _per_channel(values, channels: int, what: str) -> np.ndarray:
  v = np.asarray(values, np.float32).reshape(-1)
  if v.size == 1:
    v = np.repeat(v, channels)
  if v.size != channels:
    raise ValueError(f'data.{what}={tuple(values)!r} has {v.size} entries; the images have '
                     f'{channels} channels')
  return v


def check_batch(global_batch_size: int, num_local_devices: int, process_index: int,
                process_count: int) -> int:
  """Validates the batch split; returns the per-process batch size."""
  if process_count < 1 or not 0 <= process_index < process_count:
    raise ValueError(f'process_index={process_index} must be in [0, process_count='
                     f'{process_count})')
  if num_local_devices < 1:
    raise ValueError(f'num_local_devices={num_local_devices} must be >= 1')
  if global_batch_size < 1 or global_batch_size % (num_local_devices * process_count):
    raise ValueError(
        f'global_batch_size={global_batch_size} is not divisible by num_local_devices='
        f'{num_local_devices} x process_count={process_count} = '
        f'{num_local_devices * process_count}')
  return global_batch_size // process_count


def make_train_iterator(cfg: ml_collections.ConfigDict, global_batch_size: int, seed: int,
                        start_step: int = 0, num_local_devices: int = 1,
                        process_index: int = 0, process_count: int = 1,
                        full_batch: bool = False) -> Iterator[Batch]:
  """Infinite iterator of this process's training batches (see module docstring).

  Args:
    cfg: the data config (`default_config()`).
    global_batch_size: examples per step over all processes; ignored when
      `full_batch` (every step is the whole split).
    seed: shuffling and augmentation seed.
    start_step: first step to yield; batches equal a fresh iterator's from here.
    num_local_devices: D, the leading axis of every array.
    process_index, process_count: this host's place among the hosts.
    full_batch: yield the whole train split (with `mask`) every step.
  """
  if full_batch and seg_pipeline.is_segmentation(cfg):
    raise ValueError(f'full_batch=True is not supported for segmentation data {cfg.name!r}')
  if full_batch:
    return _full_batch(cfg, num_local_devices, process_index, process_count)
  check_batch(global_batch_size, num_local_devices, process_index, process_count)
  if start_step < 0:
    raise ValueError(f'start_step={start_step} must be >= 0')
  if seg_pipeline.is_segmentation(cfg):
    return seg_pipeline.make_train_iterator(cfg, global_batch_size, seed, start_step,
                                            num_local_devices, process_index, process_count)
  if _kind(cfg) == 'tfds':
    from experiments.data import tfds_source  # pylint: disable=g-import-not-at-top
    return tfds_source.train_iterator(cfg, global_batch_size, seed, start_step,
                                      num_local_devices, process_index, process_count)
  pipe = _array_pipeline(cfg, cfg.train_split)
  return arrays.train_batches(pipe, global_batch_size=global_batch_size, seed=seed,
                              start_step=start_step, num_local_devices=num_local_devices,
                              process_index=process_index, process_count=process_count)


def _full_batch(cfg, num_local_devices, process_index, process_count) -> Iterator[Batch]:
  check_batch(num_local_devices * process_count, num_local_devices, process_index,
              process_count)
  info = get_info(cfg)
  if _kind(cfg) == 'tfds':
    from experiments.data import tfds_source  # pylint: disable=g-import-not-at-top
    evals = tfds_source.EvalIterable(cfg, cfg.train_split, info.num_train, None,
                                     num_local_devices, process_index, process_count)
  else:
    evals = _ArrayEvalIterable(_array_pipeline(cfg, cfg.train_split), None,
                               num_local_devices, process_index, process_count)
  (batch,) = list(evals)
  return itertools.repeat(batch)


class _ArrayEvalIterable:
  """Re-iterable eval pass over an in-memory split (each `iter` is a fresh pass)."""

  def __init__(self, pipe: arrays.ArrayPipeline, local_batch, num_local_devices: int,
               process_index: int, process_count: int):
    largest = -(-len(pipe.split) // process_count)
    local_batch, self._len = arrays.eval_batching(largest, local_batch, num_local_devices)
    self._pipe = pipe
    self._kw = dict(local_batch=local_batch, num_local_devices=num_local_devices,
                    process_index=process_index, process_count=process_count)

  def __len__(self) -> int:
    return self._len

  def __iter__(self) -> Iterator[Batch]:
    return arrays.padded_batches(self._pipe, **self._kw)


def eval_image_shapes(cfg: ml_collections.ConfigDict) -> list[tuple[int, int, int]]:
  """Eval image shapes other than the train shape (a sample when they vary), to check early.

  Dense data evaluates on its own canvas (`seg.eval_size`, or per-batch
  canvases with `seg.eval_scale`); classification evaluates at the train shape.
  """
  if seg_pipeline.is_segmentation(cfg):
    return seg_pipeline.eval_image_shapes(cfg)
  return []


def make_eval_iterator(cfg: ml_collections.ConfigDict, global_batch_size: int,
                       num_local_devices: int = 1, process_index: int = 0,
                       process_count: int = 1) -> Iterable[Batch]:
  """One pass over the eval split with `mask`; every example exactly once.

  Returns a re-iterable with `len()` = batches per pass: each `iter()` (each
  `for batch in evals:`) is a fresh pass, so build it once and loop over it
  at every evaluation. Every process yields the same number of batches. The
  per-process shard is a contiguous, near-equal slice of the split
  (`tfds.even_splits` for TFDS).
  """
  local = check_batch(global_batch_size, num_local_devices, process_index, process_count)
  if seg_pipeline.is_segmentation(cfg):
    return seg_pipeline.make_eval_iterator(cfg, global_batch_size, num_local_devices,
                                           process_index, process_count)
  if _kind(cfg) == 'tfds':
    from experiments.data import tfds_source  # pylint: disable=g-import-not-at-top
    return tfds_source.EvalIterable(cfg, cfg.eval_split, get_info(cfg).num_eval, local,
                                    num_local_devices, process_index, process_count)
  return _ArrayEvalIterable(_array_pipeline(cfg, cfg.eval_split), local, num_local_devices,
                            process_index, process_count)


def iterate(iterator: Iterator[Batch], num_batches: int) -> int:
  """Pulls `num_batches` batches; returns the number of images seen (for benchmarks).

  Images, not labels: a batch's `image` is [..., H, W, C] (leading device and
  batch axes), so it holds prod(shape[:-3]) examples; a segmentation `label`
  has one entry per pixel and would count H·W per image.
  """
  images = 0
  for batch in itertools.islice(iterator, num_batches):
    images += math.prod(batch['image'].shape[:-3])
  return images


def measure_throughput(cfg: ml_collections.ConfigDict, global_batch_size: int,
                       num_batches: int, num_local_devices: int = 1, seed: int = 0,
                       warmup: int = 2) -> float:
  """Host-side training-pipeline throughput in images/s (after `warmup` batches)."""
  it = make_train_iterator(cfg, global_batch_size, seed, num_local_devices=num_local_devices)
  iterate(it, warmup)
  t0 = time.perf_counter()
  images = iterate(it, num_batches)
  return images / (time.perf_counter() - t0)
