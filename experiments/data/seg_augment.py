"""Segmentation augmentation (mmseg's ADE20K train pipeline), one example at a time, in numpy.

Order and parameters follow mmseg / SegFormer:

1. `random_rescale`: r ~ U(ratio_range); the image is resized keeping its
   aspect ratio by f = min(r·L / long_side, r·S / short_side) for the base
   scale (L, S) (ADE20K: (2048, 512), ratio range (0.5, 2.0)).
2. `random_crop` of the crop size, clipped to the image along any side
   where the image is smaller (mmseg `RandomCrop`'s box); with
   `cat_max_ratio < 1` up to 10 crops are drawn until no class (the ignore
   label aside) covers ≥ cat_max_ratio of the crop and it holds at least
   two classes (mmseg `RandomCrop(cat_max_ratio=0.75)`).
3. `flip`: left-right with probability ½.
4. `photometric_distortion` on the image only: brightness ±32/255, contrast
   ×U(0.5, 1.5) (before or after the HSV steps, at random), saturation
   ×U(0.5, 1.5), hue ±18°, each applied with probability ½; values clipped
   to [0, 1] after each step.
5. `pad_to` the crop size, bottom/right: mask 255, image the normalization
   mean (`fill`), so the padding reads 0 after normalization, as mmseg pads
   the normalized batch with 0 (`SegDataPreProcessor(pad_val=0,
   seg_pad_val=255)`); the distortion never touches padding.

Images are float32 `[H, W, 3]` in [0, 1], resized bilinearly (half-pixel
centres, antialiased when shrinking, `augment.resize_matrix`); masks are
int `[H, W]`, resized by nearest neighbour (source pixel
⌊(i + ½)·in/out⌋) so labels are never blended. Geometric steps move image
and mask with the same parameters; `rng` is a `np.random.Generator` keyed by
the example's stream position by the caller.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from experiments.data import augment as aug

IGNORE_LABEL = 255


def resize_image(image: np.ndarray, size: Sequence[int]) -> np.ndarray:
  """Bilinear resize of `[H, W, C]` to `size = (h, w)`."""
  h, w = int(size[0]), int(size[1])
  if image.shape[:2] == (h, w):
    return image.astype(np.float32, copy=False)
  mh, mw = aug.resize_matrix(image.shape[0], h), aug.resize_matrix(image.shape[1], w)
  x = image.astype(np.float32).transpose(2, 0, 1)  # [C, H, W]
  return np.ascontiguousarray((mh @ x @ mw.T).transpose(1, 2, 0))


def resize_mask(mask: np.ndarray, size: Sequence[int]) -> np.ndarray:
  """Nearest-neighbour resize of `[H, W]` labels to `size = (h, w)`."""
  h, w = int(size[0]), int(size[1])
  if mask.shape == (h, w):
    return mask
  rows = np.minimum(((np.arange(h) + 0.5) * mask.shape[0] / h).astype(np.int64), mask.shape[0] - 1)
  cols = np.minimum(((np.arange(w) + 0.5) * mask.shape[1] / w).astype(np.int64), mask.shape[1] - 1)
  return mask[rows[:, None], cols[None, :]]


def rescale_size(shape: Sequence[int], scale: Sequence[int]) -> tuple[int, int]:
  """Keep-ratio size of an `(h, w)` image fitted to base scale `(long, short)` (mmseg rescale)."""
  h, w = shape[:2]
  f = min(max(scale) / max(h, w), min(scale) / min(h, w))
  return max(int(h * f + 0.5), 1), max(int(w * f + 0.5), 1)


def random_rescale(image: np.ndarray, mask: np.ndarray, rng: np.random.Generator,
                   scale: Sequence[int], ratio_range: Sequence[float]
                   ) -> tuple[np.ndarray, np.ndarray]:
  r = rng.uniform(*ratio_range)
  size = rescale_size(image.shape, (max(scale) * r, min(scale) * r))
  return resize_image(image, size), resize_mask(mask, size)


def pad_to(image: np.ndarray, mask: np.ndarray, size: Sequence[int],
           fill: float | Sequence[float] = 0.0, ignore_label: int = IGNORE_LABEL
           ) -> tuple[np.ndarray, np.ndarray]:
  """Pads bottom/right to at least `size` (image `fill`, per channel or scalar; mask 255)."""
  ph, pw = max(size[0] - image.shape[0], 0), max(size[1] - image.shape[1], 0)
  if not ph and not pw:
    return image, mask
  out = np.empty((image.shape[0] + ph, image.shape[1] + pw, image.shape[2]), image.dtype)
  out[...] = np.asarray(fill, image.dtype)
  out[:image.shape[0], :image.shape[1]] = image
  return out, np.pad(mask, ((0, ph), (0, pw)), constant_values=ignore_label)


def random_crop(image: np.ndarray, mask: np.ndarray, rng: np.random.Generator,
                size: Sequence[int], cat_max_ratio: float = 1.0,
                ignore_label: int = IGNORE_LABEL, name: str = 'example',
                clip: bool = False) -> tuple[np.ndarray, np.ndarray]:
  """Random `size` crop (see module docstring for the category-ratio cap).

  With `clip`, a side longer than the image is cut to the image (pad after).

  Raises:
    ValueError: without `clip`, `size` is larger than the image; names `name`.
  """
  h, w = mask.shape
  ch, cw = int(size[0]), int(size[1])
  if clip:
    ch, cw = min(ch, h), min(cw, w)
  if ch > h or cw > w:
    raise ValueError(f'{name}: crop size {ch}x{cw} is larger than the padded image {h}x{w}; '
                     'pad first (data.seg.pad=True) or use a smaller crop')

  def box():
    y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    return y, x

  y, x = box()
  if cat_max_ratio < 1.0:
    for _ in range(10):
      crop = mask[y:y + ch, x:x + cw]
      _, counts = np.unique(crop[crop != ignore_label], return_counts=True)
      if len(counts) > 1 and counts.max() / counts.sum() < cat_max_ratio:
        break
      y, x = box()
  return image[y:y + ch, x:x + cw], mask[y:y + ch, x:x + cw]


def flip(image: np.ndarray, mask: np.ndarray, rng: np.random.Generator, prob: float = 0.5
         ) -> tuple[np.ndarray, np.ndarray]:
  if rng.uniform() < prob:
    return image[:, ::-1], mask[:, ::-1]
  return image, mask


def _rgb_to_hsv(x: np.ndarray) -> np.ndarray:
  r, g, b = x[..., 0], x[..., 1], x[..., 2]
  v = x.max(-1)
  c = v - x.min(-1)
  s = np.where(v > 0, c / np.where(v > 0, v, 1), 0)
  safe = np.where(c > 0, c, 1)
  h = np.where(v == r, (g - b) / safe, np.where(v == g, 2 + (b - r) / safe, 4 + (r - g) / safe))
  h = np.where(c > 0, (h / 6) % 1.0, 0)
  return np.stack([h, s, v], -1)


def _hsv_to_rgb(x: np.ndarray) -> np.ndarray:
  h, s, v = x[..., 0], x[..., 1], x[..., 2]
  k = (np.array([5, 3, 1])[None, None] + h[..., None] * 6) % 6
  return v[..., None] - v[..., None] * s[..., None] * np.clip(np.minimum(k, 4 - k), 0, 1)


def photometric_distortion(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
  """mmseg's PhotoMetricDistortion on a float image in [0, 1] (mask untouched)."""
  x = image.astype(np.float32)
  if rng.uniform() < 0.5:
    x = np.clip(x + rng.uniform(-32, 32) / 255.0, 0, 1)
  contrast_first = rng.uniform() < 0.5

  def contrast(x):
    if rng.uniform() < 0.5:
      x = np.clip(x * rng.uniform(0.5, 1.5), 0, 1)
    return x

  if contrast_first:
    x = contrast(x)
  do_sat, do_hue = rng.uniform() < 0.5, rng.uniform() < 0.5
  if do_sat or do_hue:
    hsv = _rgb_to_hsv(x)
    if do_sat:
      hsv[..., 1] = np.clip(hsv[..., 1] * rng.uniform(0.5, 1.5), 0, 1)
    if do_hue:
      hsv[..., 0] = (hsv[..., 0] + rng.uniform(-18, 18) / 360.0) % 1.0
    x = _hsv_to_rgb(hsv).astype(np.float32)
  if not contrast_first:
    x = contrast(x)
  return x
