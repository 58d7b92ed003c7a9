"""Segmentation metrics, loss and inference against hand computation and PyTorch."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from experiments.segmentation import inference
from experiments.segmentation import losses
from experiments.segmentation import metrics
from experiments.segmentation import task as seg_task

# 2x4 labels (one ignored pixel, class 3 absent from GT) and predictions.
_LABELS = np.array([[0, 0, 1, 255], [1, 2, 2, 0]])
_PREDS = np.array([[0, 1, 1, 2], [1, 2, 0, 0]])
_confusion = jax.jit(metrics.confusion_matrix, static_argnums=2)  # one compile, not one per op


def test_confusion_matrix_and_miou_by_hand():
  c = np.asarray(_confusion(jnp.array(_LABELS), jnp.array(_PREDS), 4))
  # (g, p) over the 7 valid pixels: (0,0) (0,1) (1,1) (1,1) (2,2) (2,0) (0,0)
  expected = np.array([[2, 1, 0, 0], [0, 2, 0, 0], [1, 0, 1, 0], [0, 0, 0, 0]])
  np.testing.assert_array_equal(c, expected)
  s = metrics.summarize(c)
  # IoU_0 = 2/(3+3-2), IoU_1 = 2/(2+3-2), IoU_2 = 1/(2+1-1); class 3 in neither: NaN, left out.
  np.testing.assert_allclose(s['iou'][:3], [0.5, 2 / 3, 0.5])
  assert math.isnan(s['iou'][3])
  assert s['miou'] == pytest.approx((0.5 + 2 / 3 + 0.5) / 3)
  assert s['pixel_accuracy'] == pytest.approx(5 / 7)
  assert s['mean_accuracy'] == pytest.approx((2 / 3 + 1 + 0.5) / 3)


def test_class_predicted_but_absent_from_gt_counts_as_zero():
  preds = _PREDS.copy()
  preds[1, 3] = 3  # a GT-0 pixel predicted as class 3, which no GT pixel has
  s = metrics.summarize(np.asarray(_confusion(jnp.array(_LABELS), jnp.array(preds), 4)))
  # IoU_0 = 1/(3+2-1); IoU_3 = 0/(0+1-0) = 0 and is averaged in; Acc_3 is NaN.
  np.testing.assert_allclose(s['iou'], [0.25, 2 / 3, 0.5, 0.0])
  assert s['miou'] == pytest.approx((0.25 + 2 / 3 + 0.5 + 0.0) / 4)
  assert s['mean_accuracy'] == pytest.approx((1 / 3 + 1 + 0.5) / 3)


def test_eval_sums_accumulate_whole_set_and_skip_padding():
  t = seg_task.Segmentation(num_classes=3)
  rng = np.random.default_rng(0)
  labels = rng.integers(0, 3, size=(4, 8, 8))
  labels[0, :2] = 255
  logits = jnp.asarray(rng.normal(size=(4, 2, 2, 3)), jnp.float32)
  mask = jnp.array([True, True, True, False])
  eval_sums = jax.jit(t.eval_sums)
  one = eval_sums(logits, jnp.asarray(labels), mask)
  halves = [eval_sums(logits[i:i + 2], jnp.asarray(labels[i:i + 2]), mask[i:i + 2])
            for i in (0, 2)]
  np.testing.assert_array_equal(one['confusion'], halves[0]['confusion'] + halves[1]['confusion'])
  # 3 real images of 64 pixels, 16 of them ignored.
  assert int(one['confusion'].sum()) == 3 * 64 - 16 and float(one['count']) == 3
  m = t.eval_metrics(jax.tree.map(np.asarray, one))
  preds = np.asarray(jnp.argmax(inference.resize_logits(logits, (8, 8)), -1))
  keep = (labels != 255) & np.array([1, 1, 1, 0], bool)[:, None, None]
  assert m['val/pixel_accuracy'] == pytest.approx(np.mean(preds[keep] == labels[keep]))


def test_pixel_loss_matches_torch_interpolate_and_ignore_index():
  rng = np.random.default_rng(1)
  logits = rng.normal(size=(2, 5, 6, 4)).astype(np.float32)
  labels = rng.integers(0, 4, size=(2, 20, 24))
  labels[0, 3:9, 2:7] = 255
  ours = np.asarray(jax.jit(losses.pixel_cross_entropy)(jnp.asarray(logits),
                                                        jnp.asarray(labels)))
  up = F.interpolate(torch.from_numpy(logits).permute(0, 3, 1, 2), size=(20, 24),
                     mode='bilinear', align_corners=False)
  theirs = [F.cross_entropy(up[i:i + 1], torch.from_numpy(labels[i:i + 1]), ignore_index=255)
            .item() for i in range(2)]
  np.testing.assert_allclose(ours, theirs, rtol=1e-5)
  # mmseg's default (avg_non_ignore=False): every pixel of the batch in the denominator.
  mmseg = F.cross_entropy(up, torch.from_numpy(labels), ignore_index=255, reduction='none').mean()
  per_image = losses.pixel_cross_entropy(jnp.asarray(logits), jnp.asarray(labels), average='all')
  np.testing.assert_allclose(float(jnp.mean(per_image)), mmseg.item(), rtol=1e-5)
  assert float(per_image[0]) < theirs[0]  # 30 of 480 pixels ignored: a smaller mean
  with pytest.raises(ValueError, match="average='pixels'; valid: valid, all"):
    losses.pixel_cross_entropy(jnp.asarray(logits), jnp.asarray(labels), average='pixels')


def _pointwise(images):
  """A per-pixel model at 1/4 resolution would blur; this one keeps full resolution."""
  w = jnp.array([[1.0, -2.0], [0.5, 1.0], [-1.0, 0.3]])
  return jnp.tanh(images @ w)


def test_window_starts():
  assert inference.window_starts(10, 4, 3) == [0, 3, 6]
  assert inference.window_starts(11, 4, 3) == [0, 3, 6, 7]  # last window shifted to the border
  assert inference.window_starts(5, 8, 4) == [0]


def test_slide_equals_whole_when_window_covers_image():
  x = jnp.asarray(np.random.default_rng(2).normal(size=(2, 12, 16, 3)), jnp.float32)

  def model(images):  # downsampling model: output at 1/4, like SegFormer
    n, h, w, c = images.shape
    return _pointwise(images.reshape(n, h // 4, 4, w // 4, 4, c).mean((2, 4)))

  whole = jax.jit(lambda v: inference.whole_inference(model, v))(x)
  for crop in ((12, 16), (20, 20)):
    slide = jax.jit(lambda v, c=crop: inference.slide_inference(model, v, c, (8, 8)))(x)
    np.testing.assert_array_equal(np.asarray(slide), np.asarray(whole))


def test_slide_tiles_and_averages_overlaps():
  x = jnp.asarray(np.random.default_rng(3).normal(size=(2, 11, 9, 3)), jnp.float32)
  # A pointwise model gives the same value from every window: overlaps average to it exactly.
  slide = jax.jit(lambda v: inference.slide_inference(_pointwise, v, (4, 4), (3, 3)))
  np.testing.assert_allclose(slide(x), _pointwise(x), rtol=1e-6)

  def where(images):  # position inside the window: exposes how windows were placed and averaged
    n, h, w, _ = images.shape
    yy, xx = jnp.meshgrid(jnp.arange(h, dtype=jnp.float32), jnp.arange(w, dtype=jnp.float32),
                          indexing='ij')
    return jnp.broadcast_to(jnp.stack([yy, xx], -1), (n, h, w, 2))

  out = np.asarray(jax.jit(lambda v: inference.slide_inference(where, v, (4, 5), (3, 2)))(x))
  ref, cnt = np.zeros((11, 9, 2)), np.zeros((11, 9, 1))
  for y in (0, 3, 6, 7):
    for xo in (0, 2, 4):
      yy, xx = np.meshgrid(np.arange(4), np.arange(5), indexing='ij')
      ref[y:y + 4, xo:xo + 5] += np.stack([yy, xx], -1)
      cnt[y:y + 4, xo:xo + 5] += 1
  assert cnt.min() >= 1
  np.testing.assert_allclose(out[0], ref / cnt, rtol=1e-6)
  np.testing.assert_allclose(out[1], ref / cnt, rtol=1e-6)


def test_task_bad_options():
  with pytest.raises(ValueError, match='eval_mode'):
    seg_task.Segmentation(num_classes=3, eval_mode='tiles')
  with pytest.raises(ValueError, match='crop and stride'):
    seg_task.Segmentation(num_classes=3, eval_mode='slide')
  with pytest.raises(ValueError, match='stride'):
    inference.slide_inference(_pointwise, jnp.zeros((1, 8, 8, 3)), (4, 4), (5, 4))
