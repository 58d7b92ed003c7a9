"""Random erasing and Cutout on normalized float32 batches `[N, H, W, C]` (numpy).

Both run after normalization, as in their papers' code, and draw from
(seed, example stream position) like every augmentation here
(`augment.uniform`), so resumed runs redraw them exactly.

Random erasing (Zhong et al. 2020, AAAI; timm's `RandomErasing` with
mode='pixel', count 1): with probability p, up to 10 attempts draw an area
fraction a ~ U(0.02, 1/3) and a log-uniform aspect ratio r ∈ [0.3, 1/0.3];
the box is h = round(√(a H W r)), w = round(√(a H W / r)) and is used by
the first attempt with h < H and w < W, its top-left corner uniform over
the {0, …, H-h} × {0, …, W-w} positions; its pixels (every channel) are
replaced by independent N(0, 1) draws (the normalized data's scale). If no
attempt fits, the image is left alone.

Cutout (DeVries & Taylor 2017): a square of side `size` centred at a
pixel (cy, cx) uniform over the image is set to 0 (the mean, after
normalization), clipped at the border: rows [cy - ⌊size/2⌋, cy + ⌊size/2⌋)
∩ [0, H), likewise columns, as the authors' code (an odd `size` erases
size - 1 rows). Every training image gets one square.
"""
from __future__ import annotations

import math

import numpy as np

from experiments.data import augment as aug

# Streams of `augment.uniform` used here (the others sit below 100).
_ERASE_STREAM = 100
_CUTOUT_STREAM = 200
_ATTEMPTS = 10


def erasing_boxes(seed: int, positions: np.ndarray, height: int, width: int, p: float,
                  area_range: tuple[float, float] = (0.02, 1 / 3),
                  min_aspect: float = 0.3) -> tuple[np.ndarray, ...]:
  """(erase, top, left, h, w) per position; `erase` false where no box is drawn or fits."""
  n = len(positions)
  erase = aug.uniform(seed, positions, _ERASE_STREAM) < p
  top, left, hh, ww = (np.zeros(n, np.int64) for _ in range(4))
  done = ~erase
  log_lo, log_hi = math.log(min_aspect), math.log(1 / min_aspect)
  area = height * width
  for k in range(_ATTEMPTS):
    s = _ERASE_STREAM + 1 + 4 * k
    a = area_range[0] + (area_range[1] - area_range[0]) * aug.uniform(seed, positions, s)
    r = np.exp(log_lo + (log_hi - log_lo) * aug.uniform(seed, positions, s + 1))
    h = np.round(np.sqrt(a * area * r)).astype(np.int64)
    w = np.round(np.sqrt(a * area / r)).astype(np.int64)
    ok = ~done & (h < height) & (w < width)
    t = np.floor(aug.uniform(seed, positions, s + 2) * (height - h + 1)).astype(np.int64)
    l = np.floor(aug.uniform(seed, positions, s + 3) * (width - w + 1)).astype(np.int64)
    top[ok], left[ok], hh[ok], ww[ok] = t[ok], l[ok], h[ok], w[ok]
    done |= ok
  erase &= hh > 0
  return erase, top, left, hh, ww


def random_erasing(images: np.ndarray, seed: int, positions: np.ndarray, p: float
                   ) -> np.ndarray:
  """Erases one random box per image with probability p, in place; returns `images`."""
  if p <= 0:
    return images
  _, height, width, channels = images.shape
  erase, top, left, hh, ww = erasing_boxes(seed, positions, height, width, p)
  for i in np.flatnonzero(erase):
    rng = np.random.default_rng([seed & 0xFFFFFFFF, int(positions[i]), _ERASE_STREAM])
    noise = rng.standard_normal((hh[i], ww[i], channels), dtype=np.float32)
    images[i, top[i]:top[i] + hh[i], left[i]:left[i] + ww[i]] = noise
  return images


def cutout_boxes(seed: int, positions: np.ndarray, height: int, width: int, size: int
                 ) -> tuple[np.ndarray, ...]:
  """(y0, y1, x0, x1) of each example's clipped square (half-open)."""
  cy = np.floor(aug.uniform(seed, positions, _CUTOUT_STREAM) * height).astype(np.int64)
  cx = np.floor(aug.uniform(seed, positions, _CUTOUT_STREAM + 1) * width).astype(np.int64)
  half = size // 2
  return (np.clip(cy - half, 0, height), np.clip(cy + half, 0, height),
          np.clip(cx - half, 0, width), np.clip(cx + half, 0, width))


def cutout(images: np.ndarray, seed: int, positions: np.ndarray, size: int) -> np.ndarray:
  """Zeroes one clipped `size`×`size` square per image, in place; returns `images`."""
  if size <= 0:
    return images
  y0, y1, x0, x1 = cutout_boxes(seed, positions, images.shape[1], images.shape[2], size)
  for i in range(len(images)):
    images[i, y0[i]:y1[i], x0[i]:x1[i]] = 0.0
  return images
