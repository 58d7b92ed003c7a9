"""Vectorised numpy image ops for in-memory sources: resize, crops, flips.

Every random draw is a pure function of (seed, example position, purpose):
`uniform(seed, positions, stream)` hashes the three integers with the
SplitMix64 finaliser (Steele et al., 2014) into a float in [0, 1). An
example's augmentation therefore depends only on where it sits in the
example stream, not on the batch size, the process count or what ran
before, which is what makes resumed runs bit-identical.

Images are float32 `[N, H, W, C]` with pixels in [0, 1]; ops that move
pixels take the same parameters for every spatially aligned array, so a
segmentation mask can be passed through the same crop/flip (`extra`).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def _splitmix64(x: np.ndarray) -> np.ndarray:
  x = x + _GOLDEN
  x = (x ^ (x >> np.uint64(30))) * _M1
  x = (x ^ (x >> np.uint64(27))) * _M2
  return x ^ (x >> np.uint64(31))


def uniform(seed: int, positions: np.ndarray, stream: int) -> np.ndarray:
  """Counter-based U[0, 1) draws: one float64 per position, keyed by (seed, stream)."""
  with np.errstate(over='ignore'):
    key = _splitmix64(np.uint64(seed & 0xFFFFFFFFFFFFFFFF) * np.uint64(1_000_003)
                      + np.uint64(stream))
    x = _splitmix64(np.asarray(positions, np.uint64) ^ key)
  return (x >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


def resize_matrix(n_in: int, n_out: int) -> np.ndarray:
  """`[n_out, n_in]` bilinear interpolation weights, as `jax.image.resize`.

  Output pixel i samples input coordinate s_i = (i + 1/2) n_in / n_out - 1/2
  (half-pixel centres) with the triangle kernel k(t) = max(0, 1 - |t|); when
  shrinking the kernel is widened by n_in / n_out (antialiasing). Rows are
  normalised to sum to 1, so edges renormalise instead of clamping.
  """
  scale = n_out / n_in
  centres = (np.arange(n_out) + 0.5) / scale - 0.5
  dist = np.abs(np.arange(n_in)[None, :] - centres[:, None]) * min(scale, 1.0)
  w = np.maximum(0.0, 1.0 - dist)
  return (w / w.sum(axis=1, keepdims=True)).astype(np.float32)


def resize(images: np.ndarray, size: int) -> np.ndarray:
  """Bilinear resize of `[N, H, W, C]` to `[N, size, size, C]` (two matmuls)."""
  _, h, w, _ = images.shape
  if (h, w) == (size, size):
    return images.astype(np.float32, copy=False)
  mh, mw = resize_matrix(h, size), resize_matrix(w, size)
  x = np.ascontiguousarray(images.astype(np.float32).transpose(0, 3, 1, 2))  # [N, C, H, W]
  return np.ascontiguousarray((mh @ x @ mw.T).transpose(0, 2, 3, 1))


def flip(images: np.ndarray, seed: int, positions: np.ndarray,
         extra: Sequence[np.ndarray] = (), copy: bool = True) -> tuple[np.ndarray, ...]:
  """Mirrors each image left-right with probability 1/2 (in place if not `copy`)."""
  do = uniform(seed, positions, stream=0) < 0.5
  out = []
  for x in (images, *extra):
    if copy:
      x = x.copy()
    x[do] = x[do][:, :, ::-1]
    out.append(x)
  return tuple(out)


def pad_crop(images: np.ndarray, seed: int, positions: np.ndarray, pad: int = 4,
             extra: Sequence[np.ndarray] = ()) -> tuple[np.ndarray, ...]:
  """Zero-pads `pad` pixels on each side, then takes a random crop of the original size.

  Offsets are uniform on {0, ..., 2 pad} in each axis (the CIFAR recipe of
  He et al., 2016): crop i = padded[i, dy_i : dy_i + H, dx_i : dx_i + W].
  """
  n, h, w = images.shape[:3]
  dy = np.floor(uniform(seed, positions, stream=1) * (2 * pad + 1)).astype(np.int64)
  dx = np.floor(uniform(seed, positions, stream=2) * (2 * pad + 1)).astype(np.int64)
  out = []
  for x in (images, *extra):
    if np.prod(x.shape[1:]) <= _GATHER_MAX_ELEMENTS:  # per example; an empty batch too
      out.append(_pad_crop_gather(x, dy, dx, pad))
    else:
      out.append(_pad_crop_slices(x, dy, dx, pad))
  return tuple(out)


# Per-example size up to which one strided gather over the batch beats a slice copy per
# example (the loop's Python overhead dominates small images, the gather's element-wise
# copy large ones).
_GATHER_MAX_ELEMENTS = 8192


def _pad_crop_gather(x: np.ndarray, dy: np.ndarray, dx: np.ndarray, pad: int) -> np.ndarray:
  n, h, w = x.shape[:3]
  padded = np.zeros((n, h + 2 * pad, w + 2 * pad) + x.shape[3:], x.dtype)
  padded[:, pad:pad + h, pad:pad + w] = x
  s = padded.strides
  # windows[i, a, b] is the view padded[i, a:a + h, b:b + w] (read-only, no copy).
  windows = np.lib.stride_tricks.as_strided(
      padded, (n, 2 * pad + 1, 2 * pad + 1, h, w) + x.shape[3:],
      (s[0], s[1], s[2], s[1], s[2]) + s[3:], writeable=False)
  return windows[np.arange(n), dy, dx]


def _pad_crop_slices(x: np.ndarray, dy: np.ndarray, dx: np.ndarray, pad: int) -> np.ndarray:
  h, w = x.shape[1:3]
  crops = np.zeros_like(x)
  # Python ints: numpy scalars make the per-example bounds arithmetic slow.
  for i, (oy, ox) in enumerate(zip((dy - pad).tolist(), (dx - pad).tolist())):
    # Output row r shows input row r + oy; copy the rows/cols that exist (none when the
    # offset exceeds the image, pad > H).
    y0, x0 = max(0, -oy), max(0, -ox)
    y1, x1 = max(y0, min(h, h - oy)), max(x0, min(w, w - ox))
    crops[i, y0:y1, x0:x1] = x[i, y0 + oy:y1 + oy, x0 + ox:x1 + ox]
  return crops


def crop_and_resize(images: np.ndarray, top: np.ndarray, left: np.ndarray,
                    height: np.ndarray, width: np.ndarray, size: int) -> np.ndarray:
  """Bilinearly resamples box (top, left, height, width) of each image to `size`x`size`.

  Output pixel i of example n samples y = top_n + (i + 1/2) height_n / size - 1/2,
  clamped to the box (half-pixel centres, no antialiasing: boxes are cropped
  from images already at about `size`, so this mostly upsamples).
  """
  n = images.shape[0]

  def axis(start, extent):
    s = start[:, None] + (np.arange(size) + 0.5) * (extent[:, None] / size) - 0.5
    s = np.clip(s, start[:, None], (start + extent - 1)[:, None])
    i0 = np.floor(s).astype(np.int64)
    i1 = np.minimum(i0 + 1, (start + extent - 1)[:, None].astype(np.int64))
    return i0, i1, (s - i0).astype(np.float32)

  y0, y1, wy = axis(top.astype(np.float64), height.astype(np.float64))
  x0, x1, wx = axis(left.astype(np.float64), width.astype(np.float64))
  b = np.arange(n)[:, None, None]
  wy, wx = wy[:, :, None, None], wx[:, None, :, None]

  def gather(r, c):
    return images[b, r[:, :, None], c[:, None, :]]

  top_row = gather(y0, x0) * (1 - wx) + gather(y0, x1) * wx
  bottom_row = gather(y1, x0) * (1 - wx) + gather(y1, x1) * wx
  return (top_row * (1 - wy) + bottom_row * wy).astype(np.float32)


def inception_boxes(seed: int, positions: np.ndarray, height: int, width: int,
                    area_range: tuple[float, float] = (0.08, 1.0),
                    ratio_range: tuple[float, float] = (3 / 4, 4 / 3),
                    attempts: int = 10) -> tuple[np.ndarray, ...]:
  """Random-resized-crop boxes (Szegedy et al., 2015), as torchvision samples them.

  Each attempt draws an area fraction a ~ U(area_range) and a log-uniform
  aspect ratio r; the box is w = round(sqrt(a H W r)), h = round(sqrt(a H W / r)).
  The first attempt that fits is used, placed uniformly; if none fits, the
  central crop with the ratio clamped to `ratio_range`.
  Returns (top, left, height, width) int arrays.
  """
  n = len(positions)
  area = height * width
  top = np.zeros(n, np.int64)
  left = np.zeros(n, np.int64)
  hh = np.zeros(n, np.int64)
  ww = np.zeros(n, np.int64)
  done = np.zeros(n, bool)
  log_lo, log_hi = np.log(ratio_range[0]), np.log(ratio_range[1])
  for k in range(attempts):
    a = area_range[0] + (area_range[1] - area_range[0]) * uniform(seed, positions, 10 + 4 * k)
    r = np.exp(log_lo + (log_hi - log_lo) * uniform(seed, positions, 11 + 4 * k))
    w = np.round(np.sqrt(a * area * r)).astype(np.int64)
    h = np.round(np.sqrt(a * area / r)).astype(np.int64)
    ok = (~done) & (w >= 1) & (h >= 1) & (w <= width) & (h <= height)
    t = np.floor(uniform(seed, positions, 12 + 4 * k) * (height - h + 1)).astype(np.int64)
    l = np.floor(uniform(seed, positions, 13 + 4 * k) * (width - w + 1)).astype(np.int64)
    top[ok], left[ok], hh[ok], ww[ok] = t[ok], l[ok], h[ok], w[ok]
    done |= ok
  # Fallback: the whole image, trimmed to the nearest allowed aspect ratio.
  in_ratio = width / height
  if in_ratio < ratio_range[0]:
    fw, fh = width, int(round(width / ratio_range[0]))
  elif in_ratio > ratio_range[1]:
    fh, fw = height, int(round(height * ratio_range[1]))
  else:
    fw, fh = width, height
  rest = ~done
  top[rest], left[rest] = (height - fh) // 2, (width - fw) // 2
  hh[rest], ww[rest] = fh, fw
  return top, left, hh, ww


def central_box(height: int, width: int, fraction: float, n: int) -> tuple[np.ndarray, ...]:
  """The central `fraction` of each side, as (top, left, height, width) arrays of length n."""
  ch, cw = max(1, int(round(height * fraction))), max(1, int(round(width * fraction)))
  full = lambda v: np.full(n, v, np.int64)  # noqa: E731
  return full((height - ch) // 2), full((width - cw) // 2), full(ch), full(cw)
