"""Random erasing and Cutout: box distributions, fill statistics, determinism."""
from __future__ import annotations

import math
import random

import numpy as np
from scipy import stats

from experiments.data import erasing

N, H, W, C = 4000, 32, 40, 3


def _timm_boxes(n, p, seed=0):
  """timm's RandomErasing._erase box sampling (count 1), with Python's `random`."""
  rnd = random.Random(seed)
  out = []
  for _ in range(n):
    if rnd.random() > p:
      continue
    for _ in range(10):
      area = rnd.uniform(0.02, 1 / 3) * H * W
      aspect = math.exp(rnd.uniform(math.log(0.3), math.log(1 / 0.3)))
      h, w = int(round(math.sqrt(area * aspect))), int(round(math.sqrt(area / aspect)))
      if w < W and h < H:
        out.append((rnd.randint(0, H - h), rnd.randint(0, W - w), h, w))
        break
  return np.array(out)


def test_erasing_box_distribution_matches_timm():
  erase, top, left, hh, ww = erasing.erasing_boxes(7, np.arange(N), H, W, 0.25)
  ref = _timm_boxes(N, 0.25)
  assert abs(erase.mean() - len(ref) / N) < 0.025 and abs(erase.mean() - 0.25) < 0.02
  ours = dict(area=hh[erase] * ww[erase], h=hh[erase], top=top[erase], left=left[erase])
  theirs = dict(area=ref[:, 2] * ref[:, 3], h=ref[:, 2], top=ref[:, 0], left=ref[:, 1])
  for key in ours:
    assert stats.ks_2samp(ours[key], theirs[key]).pvalue > 0.001, key
  assert np.all(hh[erase] < H) and np.all(ww[erase] < W)
  assert np.all(top[erase] + hh[erase] <= H) and np.all(left[erase] + ww[erase] <= W)
  # Area fraction within [0.02, 1/3] up to rounding of the sides.
  frac = ours['area'] / (H * W)
  assert frac.min() > 0.01 and frac.max() < 0.37


def test_erasing_fills_per_pixel_standard_normal_and_nothing_else():
  images = np.zeros((N // 4, H, W, C), np.float32)
  pos = np.arange(N // 4) + 12345
  erasing.random_erasing(images, 3, pos, 0.5)
  erase, top, left, hh, ww = erasing.erasing_boxes(3, pos, H, W, 0.5)
  inside = np.zeros(images.shape, bool)
  for i in np.flatnonzero(erase):
    inside[i, top[i]:top[i] + hh[i], left[i]:left[i] + ww[i]] = True
  assert np.all(images[~inside] == 0)
  noise = images[inside]
  assert abs(noise.mean()) < 0.01 and abs(noise.std() - 1) < 0.01
  assert abs(stats.skew(noise)) < 0.02 and abs(stats.kurtosis(noise)) < 0.05
  # Pixels and channels independent: neighbouring values uncorrelated.
  i = np.flatnonzero(erase)[0]
  box = images[i, top[i]:top[i] + hh[i], left[i]:left[i] + ww[i]]
  assert abs(np.corrcoef(box[..., 0].ravel(), box[..., 1].ravel())[0, 1]) < 0.2
  again = np.zeros_like(images)
  erasing.random_erasing(again, 3, pos, 0.5)
  np.testing.assert_array_equal(again, images)  # stateless: same seed and positions


def test_cutout_area_matches_exact_expectation_and_is_zero_filled():
  size = 16
  images = np.ones((N, H, W, C), np.float32)
  erasing.cutout(images, 1, np.arange(N), size)
  zeroed = (images == 0).all(-1).sum((1, 2))
  assert np.all((images == 0) | (images == 1))
  # E[area] = E[len of [cy - 8, cy + 8) ∩ [0, H)] · E[same for x], cy, cx uniform pixels.
  side = lambda n: np.mean([min(n, c + size // 2) - max(0, c - size // 2) for c in range(n)])  # noqa: E731
  expected = side(H) * side(W)
  assert abs(zeroed.mean() - expected) < 3 * zeroed.std() / math.sqrt(N)
  assert zeroed.max() == size * size and zeroed.min() < size * size  # clipped at borders
  y0, y1, x0, x1 = erasing.cutout_boxes(1, np.arange(N), H, W, size)
  centres = np.where(y0 > 0, y0 + size // 2, y1 - size // 2)
  counts = np.bincount(centres, minlength=H)
  assert stats.chisquare(counts).pvalue > 0.001  # centre uniform over rows


def test_off_is_identity():
  x = np.random.default_rng(0).normal(size=(8, H, W, C)).astype(np.float32)
  y = x.copy()
  erasing.random_erasing(y, 0, np.arange(8), 0.0)
  erasing.cutout(y, 0, np.arange(8), 0)
  np.testing.assert_array_equal(x, y)
