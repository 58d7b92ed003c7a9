"""The input pipeline for in-memory sources (digits, image folders), in numpy.

The train stream is the concatenation of per-epoch permutations: stream
position g is example perm_e[g mod N] with e = g div N and perm_e a uniform
permutation drawn from (seed, e). Global batch k holds positions
[kB, (k+1)B); process p takes the slice [kB + pB/P, kB + (p+1)B/P). So any
batch is computed directly from its step number (resuming at step k costs
nothing) and the global batch does not depend on the process count.
Augmentation draws are keyed by (seed, g) (see `augment.uniform`).

Stages per batch: gather -> scale to [0, 1] -> resize / crop (bilinear) ->
RandAugment (uint8, TensorFlow) -> flip -> channel conversion ->
(x - mean) / std -> random erasing, Cutout -> reshape [D, B/D, ...].
"""
from __future__ import annotations

import itertools
from typing import Iterator, Optional

import ml_collections
import numpy as np

from experiments.data import augment as aug
from experiments.data import erasing
from experiments.data import randaugment as ra
from experiments.data.config import FLIPPING
from experiments.data.source import ArraySplit

Batch = dict[str, np.ndarray]

_LUMA = np.array([0.299, 0.587, 0.114], np.float32)
_EVAL_CROP = 0.875
# Splits whose resized float32 images fit in this many bytes are resized once.
_MAX_CACHE_BYTES = 1 << 30


class BatchStage:
  """The per-batch stage shared by every source: flip/crop, channels, normalization.

  Input: `[B, S, S, c]` images already at `image_size` (uint8, or float32 in
  [0, 1]) and the stream positions keying their draws. Output: float32
  `[B, S, S, C]`, x <- (x - mean) / std after CIFAR pad-and-crop and flips,
  then random erasing and Cutout (train only).
  """

  def __init__(self, cfg: ml_collections.ConfigDict, channels: int, mean, std):
    self.cfg = cfg
    self.channels = channels
    self.mean = np.asarray(mean, np.float32)
    self.std = np.asarray(std, np.float32)
    # Whole-image offset and scale: broadcasting over a length-C inner axis is slow.
    shape = (cfg.image_size, cfg.image_size, channels)
    self._offset = np.broadcast_to(self.mean, shape).copy()
    self._inv_std = np.broadcast_to(1.0 / self.std, shape).astype(np.float32)

  def __call__(self, x: np.ndarray, positions: Optional[np.ndarray], seed: int,
               train: bool) -> np.ndarray:
    fresh = False  # whether x is a private copy that may be flipped in place
    if x.dtype == np.uint8:
      x = x.astype(np.float32)
      x /= np.float32(255.0)
      fresh = True
    if train and self.cfg.augment in ('cifar', 'shift'):
      (x,) = aug.pad_crop(x, seed, positions, pad=4)
      fresh = True
    if train and self.cfg.augment in FLIPPING:
      (x,) = aug.flip(x, seed, positions, copy=not fresh)
    out = np.subtract(convert_channels(x, self.channels), self._offset, dtype=np.float32)
    out *= self._inv_std  # in place: fresh temporaries cost more than the arithmetic
    if train:
      erasing.random_erasing(out, seed, positions, self.cfg.get('random_erasing', 0.0))
      erasing.cutout(out, seed, positions, self.cfg.get('cutout', 0))
    return out


class RandAugmentStage:
  """`data.randaugment` on a batch of images in [0, 1], via uint8 as timm's PIL images.

  Identity when `data.randaugment` is None. Fill colour: round(255·mean) of
  the normalization mean (timm's `img_mean`).
  """

  def __init__(self, cfg: ml_collections.ConfigDict, mean, native_channels: int):
    spec = cfg.get('randaugment')
    self.policy = ra.parse(spec) if spec is not None else None
    self.fill = ra.fill_colour(mean, native_channels)
    self.interpolation = cfg.get('randaugment_interpolation', 'bicubic')

  def __call__(self, x: np.ndarray, seed: int, positions: np.ndarray) -> np.ndarray:
    if self.policy is None:
      return x
    if x.dtype != np.uint8:
      x = np.clip(np.round(x * np.float32(255)), 0, 255).astype(np.uint8)
    return ra.augment_batch(x, seed, positions, self.policy, self.fill, self.interpolation)


class ArrayPipeline:
  """Turns one `ArraySplit` into normalized, augmented, device-shaped batches."""

  def __init__(self, cfg: ml_collections.ConfigDict, split: ArraySplit,
               mean: np.ndarray, std: np.ndarray, channels: int):
    self.cfg = cfg
    self.split = split
    self.channels = channels
    self.stage = BatchStage(cfg, channels, mean, std)
    self.randaugment = RandAugmentStage(cfg, mean, split.images.shape[-1])
    self._resized = None
    n, h, w, c = split.images.shape
    size = cfg.image_size
    if (cfg.augment != 'inception' and (h, w) != (size, size)
        and n * size * size * c * 4 <= _MAX_CACHE_BYTES):
      # Resizing is deterministic: do it once for the split, not every batch.
      self._resized = np.concatenate(
          [aug.resize(split.images[i:i + 512] / np.float32(split.scale), size)
           for i in range(0, n, 512)])

  def preprocess(self, idx: np.ndarray, positions: Optional[np.ndarray], seed: int,
                 train: bool) -> np.ndarray:
    """Float32 `[len(idx), S, S, C]` normalized images for examples `idx`.

    `positions` (stream positions keying the augmentation draws) is only
    read when `train` is true.
    """
    cfg, size = self.cfg, self.cfg.image_size
    if self._resized is not None:
      x = self._resized[idx]
    else:
      x = self.split.images[idx].astype(np.float32) / np.float32(self.split.scale)
    h, w = x.shape[1:3]
    if cfg.augment == 'inception':
      if train:
        box = aug.inception_boxes(seed, positions, h, w)
      else:
        box = aug.central_box(h, w, _EVAL_CROP, len(idx))
      x = aug.crop_and_resize(x, *box, size)
    else:
      x = aug.resize(x, size)
    if train:
      x = self.randaugment(x, seed, positions)
    return self.stage(x, positions, seed, train)

  def batch(self, idx: np.ndarray, positions: Optional[np.ndarray], seed: int, train: bool,
            num_local_devices: int) -> Batch:
    images = self.preprocess(idx, positions, seed, train)
    labels = self.split.labels[idx].astype(np.int32)
    return {'image': to_devices(images, num_local_devices),
            'label': to_devices(labels, num_local_devices)}


def convert_channels(x: np.ndarray, channels: int) -> np.ndarray:
  """Grey -> RGB by replication, RGB -> grey by ITU-R 601 luma; else unchanged."""
  c = x.shape[-1]
  if c == channels:
    return x
  if c == 1 and channels == 3:
    return np.broadcast_to(x, x.shape[:-1] + (3,))  # materialised by the normalization
  if c == 3 and channels == 1:
    return (x @ _LUMA)[..., None]
  raise ValueError(f'cannot convert {c} channels to data.channels={channels}')


def to_devices(x: np.ndarray, num_local_devices: int) -> np.ndarray:
  """`[B, ...]` -> `[D, B/D, ...]` (B already checked divisible)."""
  return x.reshape((num_local_devices, x.shape[0] // num_local_devices) + x.shape[1:])


def epoch_permutation(seed: int, epoch: int, n: int) -> np.ndarray:
  """The example order of one epoch: a uniform permutation drawn from (seed, epoch)."""
  return np.random.default_rng([seed & 0xFFFFFFFF, epoch, 0x5EED]).permutation(n)


def train_batches(pipe: ArrayPipeline, *, global_batch_size: int, seed: int, start_step: int,
                  num_local_devices: int, process_index: int, process_count: int
                  ) -> Iterator[Batch]:
  """Infinite stream of training batches from `start_step` on (see module docstring)."""
  n = len(pipe.split)
  local = global_batch_size // process_count
  offset = process_index * local
  perms: dict[int, np.ndarray] = {}
  for step in itertools.count(start_step):
    g = step * global_batch_size + offset + np.arange(local, dtype=np.int64)
    epochs = g // n
    for e in np.unique(epochs):
      if e not in perms:
        perms[int(e)] = epoch_permutation(seed, int(e), n)
    for e in [e for e in perms if e < epochs[0]]:
      del perms[e]
    idx = np.concatenate([perms[int(e)][g[epochs == e] % n] for e in np.unique(epochs)])
    yield pipe.batch(idx, g, seed, train=True, num_local_devices=num_local_devices)


def shard_bounds(n: int, process_index: int, process_count: int) -> tuple[int, int]:
  """Contiguous shard of [0, n) for one process; sizes differ by at most one."""
  bounds = [(n * p) // process_count for p in range(process_count + 1)]
  return bounds[process_index], bounds[process_index + 1]


def eval_batching(largest: int, local_batch: Optional[int], num_local_devices: int
                  ) -> tuple[int, int]:
  """(local batch, batch count) of an eval pass whose largest process shard has `largest` examples.

  Every process runs the same count, ⌈largest / local batch⌉, so collectives stay in
  step; `local_batch=None` means one batch holding that shard, rounded up to a
  multiple of the local devices.
  """
  if local_batch is None:
    local_batch = -(-largest // num_local_devices) * num_local_devices
  return local_batch, -(-largest // local_batch)


def padded_batches(pipe: ArrayPipeline, *, local_batch: int, num_local_devices: int,
                   process_index: int, process_count: int) -> Iterator[Batch]:
  """One pass over this process's shard, last batch zero-padded, `mask` marking real rows.

  Every process yields the same number of batches (that of the largest
  shard), so collective ops in the consumer stay in step across hosts.
  """
  n = len(pipe.split)
  lo, hi = shard_bounds(n, process_index, process_count)
  largest = max(b - a for a, b in (shard_bounds(n, p, process_count)
                                   for p in range(process_count)))
  _, num_batches = eval_batching(largest, local_batch, num_local_devices)
  for b in range(num_batches):
    start = lo + b * local_batch
    idx = np.arange(start, min(start + local_batch, hi))
    real = len(idx)
    idx = np.concatenate([idx, np.full(local_batch - real, lo if hi > lo else 0)])
    out = pipe.batch(idx, None, 0, train=False, num_local_devices=num_local_devices)
    mask = np.arange(local_batch) < real
    out['image'][to_devices(~mask, num_local_devices)] = 0.0
    out['label'][to_devices(~mask, num_local_devices)] = 0
    out['mask'] = to_devices(mask, num_local_devices)
    yield out


def channel_stats(pipe: ArrayPipeline, chunk: int = 256) -> tuple[np.ndarray, np.ndarray]:
  """Per-channel mean and std of the split as preprocessed for evaluation (unnormalized)."""
  total = np.zeros(pipe.channels, np.float64)
  total_sq = np.zeros(pipe.channels, np.float64)
  count = 0
  raw = ArrayPipeline(pipe.cfg, pipe.split, np.zeros(pipe.channels), np.ones(pipe.channels),
                      pipe.channels)
  for start in range(0, len(pipe.split), chunk):
    x = raw.preprocess(np.arange(start, min(start + chunk, len(pipe.split))), None, 0,
                       train=False).astype(np.float64)
    total += x.sum(axis=(0, 1, 2))
    total_sq += (x * x).sum(axis=(0, 1, 2))
    count += x.shape[0] * x.shape[1] * x.shape[2]
  mean = total / count
  std = np.sqrt(np.maximum(total_sq / count - mean * mean, 1e-12))
  return mean.astype(np.float32), std.astype(np.float32)
