"""Input pipeline: digits and image folders (numpy path; no TensorFlow import)."""
import inspect
import itertools
import os
import threading

import jax
import numpy as np
import pytest
from PIL import Image
from sklearn import datasets as sk_datasets

from experiments import data
from experiments.data import arrays
from experiments.data import augment
from experiments.data import digits


def _cfg(**kw):
  cfg = data.default_config()
  for k, v in kw.items():
    cfg[k] = v
  return cfg


def _rows(x):
  """Each example as bytes, for multiset comparisons."""
  return sorted(r.tobytes() for r in x.reshape(x.shape[0], -1))


def _flat(batch, key):
  return batch[key].reshape((-1,) + batch[key].shape[2:])


# ---------------------------------------------------------------- digits


def test_digits_split_is_stratified_disjoint_and_complete():
  train, test = digits.load('train'), digits.load('test')
  assert (len(train), len(test)) == (1437, 360)
  bunch = sk_datasets.load_digits()
  every = np.concatenate([train.images, test.images]).reshape(1797, 64)
  assert _rows(every) == _rows(bunch.images.astype(np.float32).reshape(1797, 64))
  counts = np.bincount(test.labels, minlength=10)
  assert counts.min() >= 35 and counts.max() <= 37  # 20% of each class (~178-183)
  assert digits.num_examples('train') == 1437 and digits.num_examples('test') == 360


def test_digits_info_shapes_and_normalization():
  assert data.get_info(_cfg()) == data.DatasetInfo(10, (8, 8, 1), 1437, 360)
  cfg = _cfg(image_size=16, channels=3)
  assert data.get_info(cfg).image_shape == (16, 16, 3)
  batch = next(data.make_train_iterator(cfg, 64, seed=0, num_local_devices=8))
  assert batch['image'].shape == (8, 8, 16, 16, 3) and batch['image'].dtype == np.float32
  assert batch['label'].shape == (8, 8) and batch['label'].dtype == np.int32
  np.testing.assert_array_equal(batch['image'][..., 0], batch['image'][..., 2])
  # Default mean/std come from the train split: the full train pass is standardized.
  (full,) = itertools.islice(data.make_train_iterator(cfg, 0, 0, num_local_devices=8,
                                                      full_batch=True), 1)
  real = _flat(full, 'image')[_flat(full, 'mask')].astype(np.float64)
  assert real.shape == (1437, 16, 16, 3)
  np.testing.assert_allclose(real.mean(axis=(0, 1, 2)), 0.0, atol=1e-4)
  np.testing.assert_allclose(real.std(axis=(0, 1, 2)), 1.0, atol=1e-4)
  # Explicit statistics are applied as (x - mean) / std on pixels in [0, 1].
  raw = digits.load('train')
  cfg = _cfg(mean=(0.25,), std=(0.5,))
  full = next(data.make_train_iterator(cfg, 0, 0, full_batch=True))
  np.testing.assert_allclose(_flat(full, 'image')[:1437], (raw.images / 16 - 0.25) / 0.5,
                             rtol=1e-6, atol=1e-6)
  np.testing.assert_array_equal(_flat(full, 'label')[:1437], raw.labels)


def test_train_epochs_are_permutations_reshuffled_per_epoch():
  cfg = _cfg()
  full = next(data.make_train_iterator(cfg, 0, 0, full_batch=True))
  everything = _rows(_flat(full, 'image')[:1437])
  it = data.make_train_iterator(cfg, 479, seed=3)  # 1437 = 3 x 479: three steps per epoch
  epochs = [[next(it) for _ in range(3)] for _ in range(2)]
  orders = []
  for epoch in epochs:
    images = np.concatenate([_flat(b, 'image') for b in epoch])
    assert _rows(images) == everything
    orders.append(np.concatenate([_flat(b, 'label') for b in epoch]))
  assert not np.array_equal(orders[0], orders[1])


@pytest.mark.parametrize('augment_kind', ['none', 'cifar', 'inception'])
def test_train_is_deterministic_and_resumes_bit_identically(augment_kind):
  cfg = _cfg(image_size=12, channels=3, augment=augment_kind)
  take = lambda it, n: list(itertools.islice(it, n))  # noqa: E731
  ref = take(data.make_train_iterator(cfg, 400, seed=7, num_local_devices=8), 9)
  again = take(data.make_train_iterator(cfg, 400, seed=7, num_local_devices=8), 9)
  resumed = take(data.make_train_iterator(cfg, 400, seed=7, start_step=5,
                                          num_local_devices=8), 4)
  other = next(data.make_train_iterator(cfg, 400, seed=8, num_local_devices=8))
  for a, b in zip(ref, again):
    np.testing.assert_array_equal(a['image'], b['image'])
  for a, b in zip(ref[5:], resumed):  # steps 5..8 straddle the epoch boundary at 1437
    np.testing.assert_array_equal(a['image'], b['image'])
    np.testing.assert_array_equal(a['label'], b['label'])
  assert not np.array_equal(other['label'], ref[0]['label'])


def test_augmentations_change_images_but_not_the_order():
  plain = next(data.make_train_iterator(_cfg(image_size=12), 64, seed=1))
  for kind in ('flip', 'cifar', 'shift', 'inception'):
    batch = next(data.make_train_iterator(_cfg(image_size=12, augment=kind), 64, seed=1))
    np.testing.assert_array_equal(batch['label'], plain['label'])
    changed = np.any(batch['image'] != plain['image'], axis=(2, 3, 4))
    assert 0.2 < changed.mean() <= 1.0, kind


def test_shift_is_the_cifar_crop_without_the_flip():
  # Same seed, same stream positions: the crops coincide, and 'cifar' is the
  # 'shift' image mirrored exactly where its flip draw fired.
  shift = _flat(next(data.make_train_iterator(_cfg(image_size=12, augment='shift'), 64, 1)), 'image')
  cifar = _flat(next(data.make_train_iterator(_cfg(image_size=12, augment='cifar'), 64, 1)), 'image')
  same = np.all(shift == cifar, axis=(1, 2, 3))
  mirrored = np.all(shift[:, :, ::-1] == cifar, axis=(1, 2, 3))
  assert np.all(same | mirrored)
  assert 0.2 < np.mean(~same) < 0.8  # the flips cifar adds, about half


def test_processes_split_each_global_batch():
  cfg = _cfg(augment='cifar')
  whole = list(itertools.islice(data.make_train_iterator(cfg, 96, 0, num_local_devices=2), 20))
  parts = [list(itertools.islice(
      data.make_train_iterator(cfg, 96, 0, num_local_devices=2, process_index=p,
                               process_count=3), 20)) for p in range(3)]
  for step in range(20):
    joined = np.concatenate([_flat(parts[p][step], 'image') for p in range(3)])
    np.testing.assert_array_equal(joined, _flat(whole[step], 'image'))


@pytest.mark.parametrize('process_count,global_batch', [(1, 64), (3, 48), (4, 64)])
def test_eval_sees_every_example_exactly_once(process_count, global_batch):
  cfg = _cfg(mean=(0.5,), std=(0.25,))
  reference = next(data.make_train_iterator(
      _cfg(train_split='test', mean=(0.5,), std=(0.25,)), 0, 0, full_batch=True))
  want = _rows(_flat(reference, 'image')[:360])
  seen, lengths = [], []
  for p in range(process_count):
    evals = data.make_eval_iterator(cfg, global_batch, num_local_devices=4, process_index=p,
                                    process_count=process_count)
    batches = list(evals)
    lengths.append(len(batches))
    assert len(evals) == len(batches)
    for b in batches:
      assert b['mask'].shape == b['label'].shape == (4, global_batch // process_count // 4)
      mask = _flat(b, 'mask')
      assert np.all(_flat(b, 'image')[~mask] == 0)
      seen.append(_flat(b, 'image')[mask])
  assert len(set(lengths)) == 1  # every host runs the same number of eval steps
  assert _rows(np.concatenate(seen)) == want
  # Re-iterating is a fresh, identical pass.
  evals = data.make_eval_iterator(cfg, global_batch, 4, 0, process_count)
  for a, b in zip(evals, evals.__iter__()):
    np.testing.assert_array_equal(a['image'], b['image'])


def test_full_batch_is_fixed_and_masked():
  it = data.make_train_iterator(_cfg(augment='cifar'), 0, 0, num_local_devices=8,
                                full_batch=True)
  a, b = next(it), next(it)
  assert a['image'].shape == (8, 180, 8, 8, 1) and a['mask'].sum() == 1437
  np.testing.assert_array_equal(a['image'], b['image'])
  np.testing.assert_array_equal(_flat(a, 'label')[:1437], digits.load('train').labels)


def test_bad_inputs_raise_value_errors():
  with pytest.raises(ValueError, match=r'global_batch_size=100.*num_local_devices=8'):
    data.make_train_iterator(_cfg(), 100, 0, num_local_devices=8)
  with pytest.raises(ValueError, match=r'global_batch_size=60.*process_count=4'):
    data.make_eval_iterator(_cfg(), 60, num_local_devices=8, process_count=4)
  with pytest.raises(ValueError, match='process_index=2'):
    data.make_train_iterator(_cfg(), 8, 0, process_index=2, process_count=2)
  with pytest.raises(ValueError, match="augment='mixup'"):
    data.get_info(_cfg(augment='mixup'))
  with pytest.raises(ValueError, match='channels=2'):
    data.get_info(_cfg(channels=2))
  with pytest.raises(ValueError, match="digits split 'validation'"):
    data.get_info(_cfg(eval_split='validation'))
  with pytest.raises(ValueError, match='/no/such/dir'):
    data.get_info(_cfg(name='folder:/no/such/dir'))
  with pytest.raises(ValueError, match='has 3 entries'):
    data.make_train_iterator(_cfg(mean=(0., 0., 0.), std=(1., 1., 1.)), 8, 0)


# ---------------------------------------------------------------- image ops


@pytest.mark.parametrize('n_in,n_out', [(8, 32), (30, 7)])
def test_resize_matches_jax_image_resize(n_in, n_out):
  x = np.random.default_rng(0).random((2, n_in, n_in + 3, 2)).astype(np.float32)
  want = jax.image.resize(x, (2, n_out, n_out, 2), 'bilinear')
  np.testing.assert_allclose(augment.resize(x, n_out), want, atol=2e-6)


def test_pad_crop_and_flip_keep_image_and_mask_aligned():
  rng = np.random.default_rng(0)
  images = rng.random((64, 10, 10, 3)).astype(np.float32)
  masks = np.arange(64 * 100).reshape(64, 10, 10)  # a mask that identifies each pixel
  pos = np.arange(1000, 1064)
  crop_img, crop_mask = augment.pad_crop(images, 5, pos, pad=4, extra=[masks])
  flip_img, flip_mask = augment.flip(crop_img, 5, pos, extra=[crop_mask])
  padded = np.pad(images, [(0, 0), (4, 4), (4, 4), (0, 0)])
  padded_mask = np.pad(masks, [(0, 0), (4, 4), (4, 4)], constant_values=-1)
  dy = np.floor(augment.uniform(5, pos, 1) * 9).astype(int)
  dx = np.floor(augment.uniform(5, pos, 2) * 9).astype(int)
  flipped = augment.uniform(5, pos, 0) < 0.5
  assert 10 < flipped.sum() < 54 and len(set(zip(dy, dx))) > 20
  for i in range(64):
    want = padded[i, dy[i]:dy[i] + 10, dx[i]:dx[i] + 10]
    want_mask = padded_mask[i, dy[i]:dy[i] + 10, dx[i]:dx[i] + 10]
    if flipped[i]:
      want, want_mask = want[:, ::-1], want_mask[:, ::-1]
    np.testing.assert_array_equal(flip_img[i], want)
    # Where the mask is not padding, it points at the pixel now shown.
    np.testing.assert_array_equal(np.where(want_mask >= 0, flip_mask[i], -1), want_mask)


@pytest.mark.parametrize('shape,pad', [((16, 10, 7, 3), 4), ((9, 30, 40, 8), 3), ((5, 5, 6), 9),
                                       ((12, 3, 3, 1), 1)])
def test_pad_crop_gather_and_slice_paths_agree_with_numpy_pad(shape, pad):
  rng = np.random.default_rng(1)
  images = rng.random(shape).astype(np.float32)
  labels = rng.integers(0, 255, shape[:3]).astype(np.uint8)
  pos = np.arange(len(images)) * 7 + 3
  dy = np.floor(augment.uniform(2, pos, 1) * (2 * pad + 1)).astype(int)
  dx = np.floor(augment.uniform(2, pos, 2) * (2 * pad + 1)).astype(int)
  h, w = shape[1:3]
  for x in (images, labels):
    padded = np.pad(x, [(0, 0), (pad, pad), (pad, pad)] + [(0, 0)] * (x.ndim - 3))
    want = np.stack([padded[i, dy[i]:dy[i] + h, dx[i]:dx[i] + w] for i in range(len(x))])
    for path in (augment._pad_crop_gather, augment._pad_crop_slices):
      got = path(x, dy, dx, pad)
      assert got.dtype == x.dtype and got.flags.c_contiguous
      np.testing.assert_array_equal(got, want)
  np.testing.assert_array_equal(augment.pad_crop(images, 2, pos, pad, extra=[labels])[1],
                                augment._pad_crop_slices(labels, dy, dx, pad))
  empty = augment.pad_crop(images[:0], 2, pos[:0], pad)[0]
  assert empty.shape == (0,) + shape[1:] and empty.dtype == images.dtype


def test_inception_boxes_respect_area_and_ratio():
  top, left, h, w = augment.inception_boxes(0, np.arange(4000), 64, 48)
  assert np.all((top >= 0) & (left >= 0) & (top + h <= 64) & (left + w <= 48))
  area = h * w / (64 * 48)
  assert area.min() >= 0.07 and area.max() <= 1.0 and np.median(area) < 0.7
  attempted = (h * w) != (64 * 48)
  ratio = w[attempted] / h[attempted]
  assert ratio.min() > 0.7 and ratio.max() < 1.4
  # The box of a given stream position never depends on its neighbours.
  again = augment.inception_boxes(0, np.arange(2000, 2100), 64, 48)
  np.testing.assert_array_equal(again[0], top[2000:2100])
  # Identity box resamples exactly.
  x = np.random.default_rng(1).random((3, 9, 9, 1)).astype(np.float32)
  box = augment.central_box(9, 9, 1.0, 3)
  np.testing.assert_allclose(augment.crop_and_resize(x, *box, 9), x, atol=1e-6)


# ---------------------------------------------------------------- folder source


def _write_folder(root, classes, per_class, size=(12, 10), mode='RGB'):
  rng = np.random.default_rng(0)
  for c in classes:
    os.makedirs(os.path.join(root, c), exist_ok=True)
    for i in range(per_class):
      shape = (size[1], size[0], 3) if mode == 'RGB' else (size[1], size[0])
      arr = rng.integers(0, 256, shape, dtype=np.uint8)
      Image.fromarray(arr, mode).save(os.path.join(root, c, f'{i:03d}.png'))


def test_folder_source_split_labels_and_pixels(tmp_path):
  _write_folder(tmp_path, ['zebra', 'ant', 'moose'], per_class=10, size=(10, 10))
  cfg = _cfg(name=f'folder:{tmp_path}', image_size=10, eval_split='val',
             mean=(0.0,), std=(1.0,))
  assert data.get_info(cfg) == data.DatasetInfo(3, (10, 10, 3), 24, 6)
  full = next(data.make_train_iterator(cfg, 0, 0, num_local_devices=2, full_batch=True))
  mask = _flat(full, 'mask')
  labels = _flat(full, 'label')[mask]
  np.testing.assert_array_equal(np.bincount(labels), [8, 8, 8])
  # Class ids follow sorted names: 'ant' = 0; pixels are the PNGs / 255.
  train_files, _, classes = data.pipeline.folder.list_split(str(tmp_path), 'train')
  assert classes == ['ant', 'moose', 'zebra']
  want = np.stack([np.asarray(Image.open(f), np.float32) / 255 for f in train_files])
  np.testing.assert_allclose(_flat(full, 'image')[mask], want, atol=1e-6)
  evals = list(data.make_eval_iterator(cfg, 4, num_local_devices=2))
  assert sum(int(b['mask'].sum()) for b in evals) == 6
  val_files, _, _ = data.pipeline.folder.list_split(str(tmp_path), 'val')
  assert not set(val_files) & set(train_files) and len(val_files) == 6
  # Resume on the folder source.
  cfg.augment = 'cifar'
  ref = list(itertools.islice(data.make_train_iterator(cfg, 8, 3), 7))
  resumed = next(data.make_train_iterator(cfg, 8, 3, start_step=6))
  np.testing.assert_array_equal(resumed['image'], ref[6]['image'])


def test_folder_with_train_val_dirs_grey_and_resized(tmp_path):
  _write_folder(tmp_path / 'train', ['b', 'a'], per_class=3, size=(20, 16), mode='L')
  _write_folder(tmp_path / 'val', ['a', 'b'], per_class=2, size=(7, 9), mode='L')
  cfg = _cfg(name=f'folder:{tmp_path}', image_size=8, eval_split='val')
  assert data.get_info(cfg) == data.DatasetInfo(2, (8, 8, 1), 6, 4)
  batch = next(data.make_train_iterator(cfg, 6, 0))
  assert batch['image'].shape == (1, 6, 8, 8, 1)
  cfg.channels = 3
  evals = list(data.make_eval_iterator(cfg, 4))
  assert len(evals) == 1 and evals[0]['image'].shape == (1, 4, 8, 8, 3)
  np.testing.assert_array_equal(evals[0]['label'][0], [0, 0, 1, 1])


def test_folder_errors_name_the_path(tmp_path):
  with pytest.raises(ValueError, match=str(tmp_path)):
    data.get_info(_cfg(name=f'folder:{tmp_path}'))  # empty
  (tmp_path / 'cls').mkdir()
  (tmp_path / 'cls' / 'broken.png').write_bytes(b'not a png')
  with pytest.raises(ValueError, match='broken.png'):
    next(data.make_train_iterator(_cfg(name=f'folder:{tmp_path}'), 1, 0))


# ---------------------------------------------------------------- prefetch


def test_prefetch_to_device_shards_and_preserves_order():
  cfg = _cfg()
  host = list(itertools.islice(data.make_train_iterator(cfg, 64, 0, num_local_devices=8), 4))
  dev = list(data.prefetch_to_device(
      iter(itertools.islice(data.make_train_iterator(cfg, 64, 0, num_local_devices=8), 4)),
      size=2))
  assert len(dev) == 4
  for h, d in zip(host, dev):
    assert isinstance(d['image'], jax.Array)
    assert len(d['image'].sharding.device_set) == 8
    np.testing.assert_array_equal(np.asarray(d['image']), h['image'])

  def failing():
    yield host[0]
    raise RuntimeError('source broke')

  it = data.prefetch_to_device(failing())
  next(it)
  with pytest.raises(RuntimeError, match='source broke'):
    next(it)


def test_prefetch_size_zero_places_in_the_callers_thread_with_the_same_batches():
  cfg = _cfg()
  source = lambda: itertools.islice(data.make_train_iterator(cfg, 64, 0, num_local_devices=8), 3)  # noqa: E731
  threaded = list(data.prefetch_to_device(iter(source()), size=2))
  seen_in = []

  def traced():
    for batch in source():
      seen_in.append(threading.current_thread())
      yield batch

  inline = list(data.prefetch_to_device(traced(), size=0))
  assert seen_in == [threading.current_thread()] * 3
  assert len(inline) == len(threaded) == 3
  for a, b in zip(inline, threaded):
    assert a['image'].sharding == b['image'].sharding
    for key in a:
      np.testing.assert_array_equal(np.asarray(a[key]), np.asarray(b[key]))

  def failing():
    yield next(source())
    raise RuntimeError('source broke')

  it = data.prefetch_to_device(failing(), size=0)
  next(it)
  with pytest.raises(RuntimeError, match='source broke'):
    next(it)
  with pytest.raises(ValueError, match='size=-1'):
    data.prefetch_to_device(iter(source()), size=-1)


def test_default_prefetch_is_inline_on_cpu_devices_and_two_on_accelerators():
  class Device:
    def __init__(self, platform):
      self.platform = platform

  assert data.default_prefetch(jax.local_devices()) == 0  # this host: CPU devices
  assert data.default_prefetch([Device('gpu'), Device('gpu')]) == 2
  assert data.default_prefetch([Device('tpu')]) == 2
  batch = {'x': np.arange(2 * jax.local_device_count()).reshape(-1, 2)}
  it = data.prefetch_to_device(iter([batch]), size=None)
  assert inspect.isgenerator(it)  # None resolved to 0 here: inline, still closable
  np.testing.assert_array_equal(np.asarray(next(it)['x']), batch['x'])


def test_measure_throughput_counts_images():
  assert data.iterate(data.make_train_iterator(_cfg(), 32, 0), 3) == 96
  assert data.measure_throughput(_cfg(), 32, 5) > 100.0


def test_shard_bounds_cover_range():
  for n, p in [(10, 3), (2, 4), (360, 7)]:
    bounds = [arrays.shard_bounds(n, i, p) for i in range(p)]
    assert bounds[0][0] == 0 and bounds[-1][1] == n
    assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
    assert max(b - a for a, b in bounds) - min(b - a for a, b in bounds) <= 1
