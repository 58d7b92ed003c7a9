"""Dense evaluation at the original label resolution (mmseg's `postprocess_result`).

Oracle: torch's `F.interpolate(bilinear, align_corners=False)` on the valid
logits block, then argmax and a numpy confusion matrix against the label
files as read by PIL, never through the pipeline.
"""
import io
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from experiments import data
from experiments import train
from experiments.configs import segformer_shapes
from experiments.segmentation import inference

_SMALL = dict(embed_dims=(16, 16, 32, 32), depths=(1, 1, 1, 1), num_heads=(1, 1, 1, 1),
              decoder_dim=32, drop_path_rate=0.0)
# (h, w) of the eval images: larger and smaller than the 32x32 canvas, both orientations.
_SIZES = ((48, 40), (20, 60), (32, 32), (17, 23), (64, 30))
_K = 4


def _torch_resize(x: np.ndarray, size) -> np.ndarray:
  """`[h, w, K]` -> `[*size, K]` with torch's bilinear, align_corners=False."""
  t = torch.from_numpy(np.array(x, np.float32)).permute(2, 0, 1)[None]
  out = F.interpolate(t, size=tuple(int(s) for s in size), mode='bilinear', align_corners=False)
  return out[0].permute(1, 2, 0).numpy()


@pytest.mark.parametrize('seed', range(3))
def test_resize_to_labels_matches_torch_on_the_valid_block(seed):
  rng = np.random.default_rng(seed)
  logits = rng.normal(size=(4, 24, 20, 3)).astype(np.float32)
  image_size = np.stack([rng.integers(1, 25, 4), rng.integers(1, 21, 4)], axis=1)
  image_size[0] = (24, 20)  # the whole canvas
  label_size = np.stack([rng.integers(1, 41, 4), rng.integers(1, 37, 4)], axis=1)
  label_size[1] = image_size[1]  # identity resize: the block itself
  out = np.asarray(inference.resize_to_labels(jnp.asarray(logits), image_size, label_size,
                                              (40, 36)))
  assert out.shape == (4, 40, 36, 3)
  for b in range(4):
    (h, w), (hh, ww) = image_size[b], label_size[b]
    want = _torch_resize(logits[b, :h, :w], (hh, ww))
    # Weights agree to an ulp of the source coordinate (torch rounds its index math differently).
    np.testing.assert_allclose(out[b, :hh, :ww], want, rtol=0, atol=1e-5)
  h, w = image_size[1]
  np.testing.assert_array_equal(out[1, :h, :w], logits[1, :h, :w])


@pytest.fixture(scope='module')
def mixed_folder(tmp_path_factory):
  """A segfolder whose val images have the sizes of `_SIZES` (labels in [0, K) and 255)."""
  root = tmp_path_factory.mktemp('mixed')
  rng = np.random.default_rng(7)
  for split, sizes in (('train', _SIZES[:2]), ('val', _SIZES)):
    os.makedirs(root / 'images' / split)
    os.makedirs(root / 'annotations' / split)
    for i, (h, w) in enumerate(sizes):
      image = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
      mask = rng.integers(0, _K, size=(h, w)).astype(np.uint8)
      mask[rng.random((h, w)) < 0.1] = 255
      Image.fromarray(image).save(root / 'images' / split / f'{i}.png')
      Image.fromarray(mask).save(root / 'annotations' / split / f'{i}.png')
  return root


def _data_cfg(root, **seg):
  c = data.default_config()
  c.name, c.image_size, c.augment = f'segfolder:{root}', 32, 'none'
  c.train_split, c.eval_split = 'train', 'val'
  c.seg = ml_collections.ConfigDict(dict(num_classes=_K, **seg))
  return c


def test_eval_batches_hold_original_labels_and_sizes(mixed_folder):
  batches = list(data.make_eval_iterator(_data_cfg(mixed_folder), 4, 2))
  assert len(batches) == 2
  first, second = batches
  # Canvas: the largest label of the batch rounded up to a multiple of 32 / 2.
  assert first['label'].shape == (2, 2, 48, 64) and second['label'].shape == (2, 2, 64, 32)
  assert first['image'].shape == second['image'].shape == (2, 2, 32, 32, 3)
  # Fitted into 32x32 keeping the aspect ratio (up or down): (48, 40) -> (32, 27),
  # (20, 60) -> (11, 32), (17, 23) -> (24, 32).
  assert first['image_size'].reshape(-1, 2).tolist() == [[32, 27], [11, 32], [32, 32], [24, 32]]
  assert first['label_size'].reshape(-1, 2).tolist() == [list(s) for s in _SIZES[:4]]
  assert second['mask'].tolist() == [[True, False], [False, False]]
  labels = first['label'].reshape(4, 48, 64)
  for i, (h, w) in enumerate(_SIZES[:4]):
    want = np.asarray(Image.open(mixed_folder / 'annotations' / 'val' / f'{i}.png'))
    np.testing.assert_array_equal(labels[i, :h, :w], want)
    assert (labels[i, h:] == 255).all() and (labels[i, :, w:] == 255).all()
  # A fixed canvas: every batch the same shape; too small a canvas names the file.
  fixed = list(data.make_eval_iterator(_data_cfg(mixed_folder, eval_label_size=64), 4, 2))
  assert {b['label'].shape for b in fixed} == {(2, 2, 64, 64)}
  with pytest.raises(ValueError, match=r"0\.png: labels are 48x40, larger than "
                     r'data.seg.eval_label_size=40; raise it to at least 48'):
    list(data.make_eval_iterator(_data_cfg(mixed_folder, eval_label_size=40), 4, 2))
  with pytest.raises(ValueError, match='set data.seg.eval_label_size'):
    data.make_eval_iterator(_data_cfg(mixed_folder), 4, 2, process_index=0, process_count=2)
  with pytest.raises(ValueError, match=r'data.seg.eval_label_size=0; valid: a positive integer or None'):
    data.make_eval_iterator(_data_cfg(mixed_folder, eval_label_size=0), 4, 2)


def _numpy_confusion(labels: np.ndarray, preds: np.ndarray) -> np.ndarray:
  keep = labels != 255
  return np.bincount(labels[keep] * _K + preds[keep], minlength=_K * _K).reshape(_K, _K)


def test_eval_scale_resizes_as_mmseg_test_pipeline_on_per_batch_canvases(mixed_folder):
  cfg = _data_cfg(mixed_folder, eval_scale=(80, 40))
  assert data.eval_image_shapes(cfg) == [(128, 128, 3), (128, 256, 3)]
  first, second = list(data.make_eval_iterator(cfg, 4, 2))
  # mmseg Resize(scale=(80, 40), keep_ratio=True): f = min(80 / long, 40 / short).
  sizes = [(48, 40), (27, 80), (40, 40), (40, 54)]
  assert first['image_size'].reshape(-1, 2).tolist() == [list(s) for s in sizes]
  assert first['image'].shape == (2, 2, 128, 128, 3)  # largest (48, 80) rounded up to 128
  assert second['image_size'].reshape(-1, 2)[0].tolist() == [80, 38]
  image = first['image'].reshape(4, 128, 128, 3)
  assert (image[1, 27:] == 0).all() and (image[0, :, 40:] == 0).all()  # normalized padding
  np.testing.assert_array_equal(second['label'].reshape(4, 128, 128)[0, :64, :30], np.asarray(
      Image.open(mixed_folder / 'annotations' / 'val' / '4.png')))
  with pytest.raises(ValueError, match=r'eval_scale=\(80, 40\) gives every batch its own'):
    data.make_eval_iterator(cfg, 4, 2, process_index=0, process_count=2)
  with pytest.raises(ValueError, match=r'data.seg.eval_scale=\(0, 40\); must be None or'):
    data.make_eval_iterator(_data_cfg(mixed_folder, eval_scale=(0, 40)), 4, 2)


def test_build_rejects_a_backbone_that_cannot_take_eval_scale_canvases(mixed_folder):
  c = segformer_shapes.get_config()
  c.model.overrides = ml_collections.ConfigDict(dict(backbone='pvt_tiny', img_size=32))
  c.data = _data_cfg(mixed_folder, eval_scale=(80, 40))
  with pytest.raises(ValueError, match=r"cannot evaluate \(128, 128, 3\) images "
                     r'\(data.seg.eval_size / data.seg.eval_scale canvases\)'):
    train.build(c, devices=jax.local_devices()[:2])


@pytest.mark.parametrize('eval_mode', ['whole', 'slide', 'whole_scale'])
def test_trainer_eval_equals_torch_postprocess_at_label_resolution(mixed_folder, eval_mode):
  c = segformer_shapes.get_config()
  c.model.overrides = ml_collections.ConfigDict(_SMALL)
  e = 48 if eval_mode == 'slide' else 32  # slide: 32x32 windows at rows/cols 0 and 16
  seg = dict(eval_scale=(80, 40)) if eval_mode == 'whole_scale' else {}
  c.data = _data_cfg(mixed_folder, eval_size=e, **seg)
  c.batch_size, c.eval_batch_size = 2, 4
  if eval_mode == 'slide':
    c.task_options = ml_collections.ConfigDict(dict(eval_mode='slide', crop=(32, 32),
                                                    stride=(16, 16)))
  setup = train.build(c, devices=jax.local_devices()[:2])
  state = train.init_state(setup, jax.random.PRNGKey(3))
  rep = lambda t: train.replicate(t, setup.devices)
  batches = data.make_eval_iterator(c.data, 4, 2)
  got = train.evaluate(train.pmap_eval_step(setup), rep(state.params), rep(state.model_state),
                       batches, setup.task, setup.devices)
  assert got['val/count'] == len(_SIZES)

  def apply(x):
    return setup.module.apply({'params': state.params, **state.model_state}, x, train=False)

  confusion = np.zeros((_K, _K), np.int64)
  for batch in batches:
    images = batch['image'].reshape(-1, *batch['image'].shape[-3:])
    if eval_mode != 'slide':
      canvas = [_torch_resize(z, images.shape[1:3]) for z in np.asarray(apply(images))]
    else:
      canvas = np.zeros((len(images), e, e, _K), np.float32)
      count = np.zeros((e, e, 1), np.float32)
      for y in (0, 16):
        for x in (0, 16):
          tile = np.asarray(apply(images[:, y:y + 32, x:x + 32]))
          canvas[:, y:y + 32, x:x + 32] += [_torch_resize(z, (32, 32)) for z in tile]
          count[y:y + 32, x:x + 32] += 1
      canvas = canvas / count
    for b, valid in enumerate(batch['mask'].reshape(-1)):
      if not valid:
        continue
      (h, w), (hh, ww) = batch['image_size'].reshape(-1, 2)[b], batch['label_size'].reshape(-1, 2)[b]
      pred = _torch_resize(canvas[b][:h, :w], (hh, ww)).argmax(-1)
      i = int(np.flatnonzero([s == (hh, ww) for s in _SIZES])[0])
      labels = np.asarray(Image.open(mixed_folder / 'annotations' / 'val' / f'{i}.png'))
      confusion += _numpy_confusion(labels.astype(np.int64), pred)
  tp = np.diag(confusion)
  union = confusion.sum(0) + confusion.sum(1) - tp
  assert got['val/pixel_accuracy'] == pytest.approx(tp.sum() / confusion.sum(), abs=1e-12)
  assert got['val/miou'] == pytest.approx(np.mean(tp[union > 0] / union[union > 0]), abs=1e-12)
  assert confusion.sum() == sum(int((np.asarray(Image.open(
      mixed_folder / 'annotations' / 'val' / f'{i}.png')) != 255).sum()) for i in range(5))
