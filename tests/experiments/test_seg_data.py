"""Segmentation data: shapes, augmentation alignment, segfolder, resume and bad input."""
import os

import ml_collections
import numpy as np
import pytest
from PIL import Image

from experiments import data
from experiments.data import seg_augment as seg_aug
from experiments.data import seg_pipeline
from experiments.data import shapes


def _coded(seed=0, h=40, w=48, block=4, k=3):
  """A blocky label map and an image whose channels one-hot encode it (mask = argmax(image))."""
  rng = np.random.default_rng(seed)
  small = rng.integers(0, k, size=(h // block, w // block))
  mask = np.kron(small, np.ones((block, block), np.int64))
  return np.eye(k, dtype=np.float32)[mask], mask


def _agreement(image, mask):
  valid = mask != 255
  return np.mean(np.argmax(image, -1)[valid] == mask[valid])


def _aligned(image, mask):
  """Mask = argmax(image) better than for any one-pixel shift of the mask (and mostly equal)."""
  a = _agreement(image, mask)
  h, w = mask.shape
  shifted = max(_agreement(image[1:h - 1, 1:w - 1], mask[1 + dy:h - 1 + dy, 1 + dx:w - 1 + dx])
                for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0))
  return a > 0.85 and a > shifted + 0.02


def test_shapes_deterministic_exact_and_varied():
  a_img, a_lab = shapes.load('test[:12]', 32)
  b_img, b_lab = shapes.example(0, 1, 5, 32)
  np.testing.assert_array_equal(a_img[5], b_img)
  np.testing.assert_array_equal(a_lab[5], b_lab)
  c_img, _ = shapes.example(1, 1, 5, 32)
  assert not np.array_equal(b_img, c_img)
  assert set(np.unique(a_lab)) == set(range(shapes.NUM_CLASSES))
  # Every pixel has one label; shapes occlude each other (several classes per image).
  assert min(len(np.unique(l)) for l in a_lab) >= 2
  with pytest.raises(ValueError, match="shapes split='val'"):
    shapes.num_examples('val')


@pytest.mark.parametrize('seed', range(4))
def test_every_geometric_augmentation_keeps_the_mask_aligned(seed):
  image, mask = _coded(seed, h=64, w=72, block=8)
  rng = np.random.default_rng(seed)
  x, y = seg_aug.random_rescale(image, mask, rng, (72, 64), (0.5, 2.0))
  assert x.shape[:2] == y.shape and x.shape[:2] != image.shape[:2]
  # Bilinear image vs nearest mask: they can only disagree on block borders.
  assert _aligned(x, y)
  x, y = seg_aug.pad_to(x, y, (160, 160))
  assert (y[x.sum(-1) == 0] == 255).all() and _aligned(x, y)
  x2, y2 = seg_aug.random_crop(x, y, rng, (32, 32), cat_max_ratio=0.75)
  assert x2.shape[:2] == y2.shape == (32, 32)
  assert _aligned(x2, y2)
  xc, yc = seg_aug.random_crop(image, mask, rng, (24, 20))
  assert _agreement(xc, yc) == 1.0  # crop and flip move pixels exactly
  xf, yf = seg_aug.flip(image, mask, rng, prob=1.0)
  assert _agreement(xf, yf) == 1.0 and np.array_equal(yf, mask[:, ::-1])


def test_shift_by_one_pixel_would_be_caught():
  image, mask = _coded(0)
  assert not _aligned(image[:, 1:], mask[:, :-1])  # the alignment check has teeth
  assert not _aligned(image[1:], mask[:-1])


def test_photometric_distortion_is_per_pixel_and_image_only():
  image, mask = _coded(1)
  palette = np.array([[0.9, 0.2, 0.1], [0.1, 0.6, 0.3], [0.3, 0.3, 0.8]], np.float32)
  x = palette[mask]
  changed = 0
  for seed in range(6):
    out = seg_aug.photometric_distortion(x, np.random.default_rng(seed))
    assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1
    changed += not np.allclose(out, x)
    for c in range(3):  # pixels of one class keep one colour: the mask still describes the image
      colours = out[mask == c]
      np.testing.assert_allclose(colours, np.broadcast_to(colours[0], colours.shape), atol=1e-6)
  assert changed >= 4


def test_cat_max_ratio_avoids_single_class_crops():
  mask = np.zeros((64, 64), np.int64)
  mask[:, 52:] = 1
  image = np.eye(2, dtype=np.float32)[mask]

  def ok(y):
    _, counts = np.unique(y, return_counts=True)
    return len(counts) > 1 and counts.max() / counts.sum() < 0.75

  capped = sum(ok(seg_aug.random_crop(image, mask, np.random.default_rng(s), (24, 24), 0.75)[1])
               for s in range(30))
  plain = sum(ok(seg_aug.random_crop(image, mask, np.random.default_rng(s), (24, 24), 1.0)[1])
              for s in range(30))
  # One try succeeds with p = 7/41; eleven tries with 1 - (34/41)^11 ≈ 0.87.
  assert capped >= 20 and plain <= 10


def _cfg(name, size=24, augment='seg', **seg):
  c = data.default_config()
  c.name, c.image_size, c.augment = name, size, augment
  c.train_split, c.eval_split = 'train', 'val'
  c.mean, c.std = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
  c.seg = ml_collections.ConfigDict(seg)
  return c


@pytest.fixture(scope='module')
def segfolder(tmp_path_factory):
  root = tmp_path_factory.mktemp('segfolder')
  for split, n in (('train', 5), ('val', 3)):
    os.makedirs(root / 'images' / split)
    os.makedirs(root / 'annotations' / split)
    for i in range(n):
      image, mask = _coded(10 + i, h=32, w=40, block=8)
      Image.fromarray((image * 255).astype(np.uint8)).save(root / 'images' / split / f'{i}.png')
      Image.fromarray(mask.astype(np.uint8)).save(root / 'annotations' / split / f'{i}.png')
  return root


def test_segfolder_train_and_eval_batches_keep_masks(segfolder):
  cfg = _cfg(f'segfolder:{segfolder}', num_classes=3, photometric=False, ratio_range=(1.0, 2.0))
  info = data.get_info(cfg)
  assert info == data.DatasetInfo(3, (24, 24, 3), 5, 3)
  train = data.make_train_iterator(cfg, 4, seed=0, num_local_devices=2)
  batch = next(train)
  assert batch['image'].shape == (2, 2, 24, 24, 3) and batch['label'].shape == (2, 2, 24, 24)
  assert batch['label'].dtype == np.int32
  x, y = batch['image'].reshape(-1, 24, 24, 3), batch['label'].reshape(-1, 24, 24)
  assert all(_aligned(a, b) for a, b in zip(x, y))
  # Resume: start_step=2 yields what a fresh iterator yields third.
  next(train)
  third = next(train)
  resumed = next(data.make_train_iterator(cfg, 4, seed=0, start_step=2, num_local_devices=2))
  np.testing.assert_array_equal(third['label'], resumed['label'])
  np.testing.assert_array_equal(third['image'], resumed['image'])
  # Eval: 3 examples in batches of 2, padding masked and all-ignore; labels fitted into 24x24.
  evals = data.make_eval_iterator(cfg_eval := _cfg(f'segfolder:{segfolder}', num_classes=3,
                                                    eval_size=40), 2, 2)
  del cfg_eval
  batches = list(evals)
  assert len(evals) == len(batches) == 2
  assert batches[1]['mask'].tolist() == [[True], [False]]
  assert (batches[1]['label'][1] == 255).all()
  _, first = seg_pipeline.seg_folder.read_pair(*seg_pipeline.seg_folder.list_split(
      str(segfolder), 'val')[0])
  np.testing.assert_array_equal(batches[0]['label'][0, 0, :32, :40], first)  # original labels
  assert (batches[0]['label'][0, 0, 32:] == 255).all()


def test_padding_reads_zero_after_normalization_and_skips_photometric(segfolder):
  """mmseg pads the normalized batch with 0 after the photometric step (pad_val=0)."""
  # 32x40 images rescaled to at most 16 pixels on the short side: always smaller than the crop.
  cfg = _cfg(f'segfolder:{segfolder}', size=24, num_classes=3, scale=(20, 16),
             ratio_range=(0.5, 1.0))
  cfg.mean, cfg.std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.5)
  batch = next(data.make_train_iterator(cfg, 8, seed=3, start_step=0, num_local_devices=1))
  x, y = batch['image'].reshape(-1, 24, 24, 3), batch['label'].reshape(-1, 24, 24)
  pad = y == 255  # the masks hold classes 0..2 only: 255 is padding
  assert pad[:, -1].all() and pad[:, :, -1].all() and not pad.all(axis=(1, 2)).any()
  assert (x[pad] == 0.0).all() and (x[~pad] != 0.0).any(axis=-1).mean() > 0.95
  # Eval canvas (images fitted into 48x48): padding is 0 once normalized as well.
  cfg.seg.eval_size = 48
  ev = next(iter(data.make_eval_iterator(cfg, 2, 1)))
  (h, w) = ev['image_size'][0, 0]
  assert (h, w) == (38, 48) and (ev['image'][0, 0, h:] == 0.0).all()


def test_random_crop_clip_cuts_the_box_to_the_image():
  image, mask = _coded(0, h=16, w=40, block=4)
  x, y = seg_aug.random_crop(image, mask, np.random.default_rng(0), (24, 24), clip=True)
  assert y.shape == (16, 24) and _agreement(x, y) == 1.0
  with pytest.raises(ValueError, match='crop size 24x24 is larger than the padded image 16x40'):
    seg_aug.random_crop(image, mask, np.random.default_rng(0), (24, 24))
  xp, yp = seg_aug.pad_to(x, y, (24, 24), fill=(0.5, 0.25, 0.125))
  assert yp.shape == (24, 24) and (yp[16:] == 255).all()
  np.testing.assert_array_equal(xp[16:], np.broadcast_to([0.5, 0.25, 0.125], (8, 24, 3)))


def test_reduce_zero_label():
  y = seg_pipeline.prepare_labels(np.array([[0, 1, 150], [255, 2, 0]]), 150, True, 'ex')
  np.testing.assert_array_equal(y, [[255, 0, 149], [255, 1, 255]])


def test_bad_inputs_name_the_file_or_example(segfolder, tmp_path):
  root = tmp_path / 'bad'
  for sub in ('images/train', 'annotations/train', 'images/val', 'annotations/val'):
    os.makedirs(root / sub)
  Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / 'images/train/a.png')
  Image.fromarray(np.zeros((8, 6), np.uint8)).save(root / 'annotations/train/a.png')
  with pytest.raises(ValueError, match=r'annotations/train/a\.png.* is 8x6 .*images/train/a\.png'):
    next(data.make_train_iterator(_cfg(f'segfolder:{root}', num_classes=3), 1, 0))
  Image.fromarray(np.full((8, 6), 7, np.uint8)).save(root / 'annotations/train/a.png')
  Image.fromarray(np.zeros((8, 6, 3), np.uint8)).save(root / 'images/train/a.png')
  with pytest.raises(ValueError, match=r'annotations/train/a\.png: label values \[7\] are outside'):
    next(data.make_train_iterator(_cfg(f'segfolder:{root}', num_classes=3), 1, 0))
  with pytest.raises(ValueError, match=r'shapes/train\[0\]: crop size 40x40 is larger than the '
                     r'padded image 24x24'):
    seg_aug.random_crop(*_coded(0, 24, 24), np.random.default_rng(0), (40, 40),
                        name='shapes/train[0]')
  cfg = _cfg('shapes', 64, pad=False, ratio_range=(0.5, 0.5))
  cfg.train_split = 'train[:4]'
  with pytest.raises(ValueError, match=r'shapes train\[:4\] example \d: crop size 64x64 is larger'):
    next(data.make_train_iterator(cfg, 2, 0))
  with pytest.raises(ValueError, match='data.seg has unknown key'):
    data.get_info(_cfg('shapes', colour=1))
  with pytest.raises(ValueError, match='data.seg.num_classes is not set'):
    data.get_info(_cfg(f'segfolder:{segfolder}'))
