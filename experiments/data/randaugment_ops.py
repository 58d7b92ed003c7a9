"""RandAugment's image operations in TensorFlow, pixel-compatible with PIL.

timm's RandAugment applies PIL operations to uint8 images; these are the
same operations on uint8 `[H, W, C]` tensors (C = 1 or 3, PIL modes 'L' and
'RGB'), written from PIL's definitions so that results agree with PIL to
within one grey level (tests/experiments/test_randaugment.py compares every
op on random images):

- look-up tables per channel: `invert` 255 - x; `posterize` x & ~(2^(8-b) - 1);
  `solarize` x < thr ? x : 255 - x; `solarize_add` x < thr ? min(255, x + a) : x;
  `autocontrast` x ↦ ⌊(x - lo)·255/(hi - lo)⌋ between the channel's extremes;
  `equalize` x ↦ ⌊(⌊s/2⌋ + #{pixels < x}) / s⌋, s = ⌊(N - n_max)/255⌋ with
  n_max the count of the largest value present (PIL ≥ 10's histogram
  equalisation).
- enhancements (`ImageEnhance`): blend(d, x, f) = d + f·(x - d) in float32,
  truncated and clipped to [0, 255], against a degenerate image d: `color`
  the luma L = (19595 R + 38470 G + 7471 B + 2^15) >> 16; `contrast` a flat
  image at the rounded mean luma; `brightness` black; `sharpness` PIL's
  SMOOTH filter (3×3 kernel [[1,1,1],[1,5,1],[1,1,1]]/13, rounded, border
  pixels kept).
- geometry (`Image.transform(AFFINE)`): output pixel (x, y) samples the
  input at (a·(x+½) + b·(y+½) + c, d·(x+½) + e·(y+½) + f); samples outside
  [0, W)×[0, H) take the fill colour; inside, 'nearest' takes the pixel
  containing the point, 'bilinear' and 'bicubic' interpolate between pixel
  centres with edge clamping (PIL's transform bicubic is the a = -1 cubic
  convolution). `rotate` uses PIL's matrix about the centre (W/2, H/2)
  with cos and sin rounded to 15 decimals.
"""
from __future__ import annotations

import functools
import math
from typing import Sequence

INTERPOLATIONS = ('nearest', 'bilinear', 'bicubic')


@functools.lru_cache(maxsize=None)
def _tf():
  from experiments.data import tfds_source  # pylint: disable=g-import-not-at-top
  return tfds_source._tf()  # pylint: disable=protected-access


def _channels(img) -> list:
  return [img[..., c] for c in range(img.shape[-1])]


def _apply_luts(img, luts):
  """Per-channel look-up: luts is a list of int32 `[256]` tensors (one per channel)."""
  tf = _tf()
  x = tf.cast(img, tf.int32)
  out = [tf.gather(lut, ch) for lut, ch in zip(luts, _channels(x))]
  return tf.cast(tf.clip_by_value(tf.stack(out, axis=-1), 0, 255), tf.uint8)


def _same_lut(img, lut):
  return _apply_luts(img, [lut] * img.shape[-1])


def invert(img):
  tf = _tf()
  return tf.cast(255 - tf.cast(img, tf.int32), tf.uint8)


def posterize(img, bits):
  """Keeps the `bits` most significant bits (≥ 8: unchanged, as timm; 0: black, as PIL < 10)."""
  tf = _tf()
  bits = tf.cast(bits, tf.int32)
  mask = tf.bitwise.invert(tf.bitwise.left_shift(1, 8 - tf.minimum(bits, 8)) - 1)
  return _same_lut(img, tf.bitwise.bitwise_and(tf.range(256), mask))


def solarize(img, threshold):
  tf = _tf()
  i = tf.range(256)
  return _same_lut(img, tf.where(i < tf.cast(threshold, tf.int32), i, 255 - i))


def solarize_add(img, add, threshold=128):
  tf = _tf()
  i = tf.range(256)
  return _same_lut(img, tf.where(i < threshold, tf.minimum(255, i + tf.cast(add, tf.int32)), i))


def _histogram(channel):
  tf = _tf()
  return tf.math.bincount(tf.reshape(tf.cast(channel, tf.int32), [-1]), minlength=256,
                          maxlength=256)


def autocontrast(img):
  tf = _tf()
  luts = []
  for ch in _channels(img):
    present = _histogram(ch) > 0
    idx = tf.range(256)
    lo = tf.reduce_min(tf.where(present, idx, 256))
    hi = tf.reduce_max(tf.where(present, idx, -1))
    scale = 255.0 / tf.cast(tf.maximum(hi - lo, 1), tf.float64)
    offset = -tf.cast(lo, tf.float64) * scale
    stretched = tf.cast(tf.cast(idx, tf.float64) * scale + offset, tf.int32)  # int(): truncation
    luts.append(tf.where(hi <= lo, idx, tf.clip_by_value(stretched, 0, 255)))
  return _apply_luts(img, luts)


def equalize(img):
  tf = _tf()
  luts = []
  for ch in _channels(img):
    h = _histogram(ch)
    idx = tf.range(256)
    top = tf.reduce_max(tf.where(h > 0, idx, -1))
    present = tf.reduce_sum(tf.cast(h > 0, tf.int32))
    step = (tf.reduce_sum(h) - tf.gather(h, tf.maximum(top, 0))) // 255
    safe = tf.maximum(step, 1)
    lut = (step // 2 + tf.cumsum(h, exclusive=True)) // safe
    luts.append(tf.where((present <= 1) | (step == 0), idx, lut))
  return _apply_luts(img, luts)


def _luma(img):
  """PIL's RGB→L: (19595 R + 38470 G + 7471 B + 2^15) >> 16, int32 `[H, W]`."""
  tf = _tf()
  x = tf.cast(img, tf.int32)
  if img.shape[-1] == 1:
    return x[..., 0]
  return tf.bitwise.right_shift(19595 * x[..., 0] + 38470 * x[..., 1] + 7471 * x[..., 2]
                                + 32768, 16)


def blend(degenerate, img, factor):
  """PIL's Image.blend(degenerate, img, factor): d + f·(x - d) in float32, truncated, clipped."""
  tf = _tf()
  d = tf.cast(degenerate, tf.float32)
  v = d + tf.cast(factor, tf.float32) * (tf.cast(img, tf.float32) - d)
  return tf.cast(tf.clip_by_value(tf.floor(v), 0.0, 255.0), tf.uint8)


def color(img, factor):
  tf = _tf()
  grey = tf.cast(_luma(img), tf.uint8)[..., None]
  return blend(tf.broadcast_to(grey, tf.shape(img)), img, factor)


def contrast(img, factor):
  tf = _tf()
  mean = tf.reduce_mean(tf.cast(_luma(img), tf.float64))
  level = tf.cast(tf.floor(mean + 0.5), tf.uint8)
  return blend(tf.fill(tf.shape(img), level), img, factor)


def brightness(img, factor):
  tf = _tf()
  return blend(tf.zeros_like(img), img, factor)


def smooth(img):
  """PIL's ImageFilter.SMOOTH: 3×3 kernel /13, rounded; the one-pixel border is copied."""
  tf = _tf()
  x = tf.cast(img, tf.float32)
  k = tf.constant([[1, 1, 1], [1, 5, 1], [1, 1, 1]], tf.float32) / 13.0
  c = img.shape[-1]
  kernel = tf.tile(k[:, :, None, None], [1, 1, c, 1])
  inner = tf.nn.depthwise_conv2d(x[None], kernel, [1, 1, 1, 1], 'VALID')[0]
  inner = tf.clip_by_value(tf.floor(inner + 0.5), 0.0, 255.0)
  padded = tf.pad(inner, [[1, 1], [1, 1], [0, 0]])
  shape = tf.shape(x)
  rows = tf.range(shape[0])[:, None, None]
  cols = tf.range(shape[1])[None, :, None]
  border = (rows == 0) | (rows == shape[0] - 1) | (cols == 0) | (cols == shape[1] - 1)
  return tf.cast(tf.where(border, x, padded), tf.uint8)


def sharpness(img, factor):
  return blend(smooth(img), img, factor)


def _cubic(v0, v1, v2, v3, d):
  """PIL's transform bicubic (Geometry.c BICUBIC): the a = -1 cubic convolution."""
  p1 = v1
  p2 = -v0 + v2
  p3 = 2 * (v0 - v1) + v2 - v3
  p4 = -v0 + v1 - v2 + v3
  return p1 + d * (p2 + d * (p3 + d * p4))


def affine(img, matrix: Sequence, fill: Sequence[int], interpolation: str = 'bilinear'):
  """PIL's img.transform(size, AFFINE, matrix, resample, fillcolor=fill) (see module doc)."""
  tf = _tf()
  if interpolation not in INTERPOLATIONS:
    raise ValueError(f'interpolation={interpolation!r}; valid: {", ".join(INTERPOLATIONS)}')
  shape = tf.shape(img)
  h, w, c = shape[0], shape[1], img.shape[-1]
  a, b, cc, d, e, f = (tf.cast(m, tf.float64) for m in matrix)
  ys = tf.cast(tf.range(h), tf.float64)[:, None] + 0.5
  xs = tf.cast(tf.range(w), tf.float64)[None, :] + 0.5
  xin = a * xs + b * ys + cc
  yin = d * xs + e * ys + f
  wf, hf = tf.cast(w, tf.float64), tf.cast(h, tf.float64)
  valid = (xin >= 0) & (xin < wf) & (yin >= 0) & (yin < hf)
  flat = tf.reshape(tf.cast(img, tf.float64), [-1, c])

  def gather(yi, xi):
    yi = tf.clip_by_value(yi, 0, h - 1)
    xi = tf.clip_by_value(xi, 0, w - 1)
    return tf.gather(flat, yi * w + xi)  # [H, W, C]

  if interpolation == 'nearest':
    out = gather(tf.cast(tf.floor(yin), tf.int32), tf.cast(tf.floor(xin), tf.int32))
  else:
    xs0, ys0 = xin - 0.5, yin - 0.5
    x0, y0 = tf.floor(xs0), tf.floor(ys0)
    dx, dy = (xs0 - x0)[..., None], (ys0 - y0)[..., None]
    x0, y0 = tf.cast(x0, tf.int32), tf.cast(y0, tf.int32)
    if interpolation == 'bilinear':
      def row(yi):
        left, right = gather(yi, x0), gather(yi, x0 + 1)
        return left + (right - left) * dx
      top, bottom = row(y0), row(y0 + 1)
      out = top + (bottom - top) * dy
    else:
      def row(yi):
        return _cubic(*(gather(yi, x0 + k) for k in (-1, 0, 1, 2)), dx)
      out = _cubic(*(row(y0 + k) for k in (-1, 0, 1, 2)), dy)
    out = tf.clip_by_value(tf.floor(out), 0.0, 255.0)
  fill = tf.cast(tf.reshape(tf.constant(list(fill), tf.float64), [1, 1, -1]), tf.float64)
  out = tf.where(valid[..., None], out, tf.broadcast_to(fill, tf.shape(out)))
  return tf.cast(out, tf.uint8)


def rotate(img, degrees, fill, interpolation='bilinear'):
  """PIL's img.rotate(degrees, resample, fillcolor=fill): counter-clockwise about the centre."""
  tf = _tf()
  shape = tf.shape(img)
  cx, cy = tf.cast(shape[1], tf.float64) / 2, tf.cast(shape[0], tf.float64) / 2
  angle = -tf.cast(degrees, tf.float64) * (math.pi / 180.0)
  cos = tf.round(tf.cos(angle) * 1e15) / 1e15
  sin = tf.round(tf.sin(angle) * 1e15) / 1e15
  a, b, d, e = cos, sin, -sin, cos
  c = a * -cx + b * -cy + cx
  f = d * -cx + e * -cy + cy
  return affine(img, (a, b, c, d, e, f), fill, interpolation)


def shear_x(img, factor, fill, interpolation='bilinear'):
  return affine(img, (1.0, factor, 0.0, 0.0, 1.0, 0.0), fill, interpolation)


def shear_y(img, factor, fill, interpolation='bilinear'):
  return affine(img, (1.0, 0.0, 0.0, factor, 1.0, 0.0), fill, interpolation)


def translate_x_rel(img, pct, fill, interpolation='bilinear'):
  tf = _tf()
  pixels = tf.cast(pct, tf.float64) * tf.cast(tf.shape(img)[1], tf.float64)
  return affine(img, (1.0, 0.0, pixels, 0.0, 1.0, 0.0), fill, interpolation)


def translate_y_rel(img, pct, fill, interpolation='bilinear'):
  tf = _tf()
  pixels = tf.cast(pct, tf.float64) * tf.cast(tf.shape(img)[0], tf.float64)
  return affine(img, (1.0, 0.0, 0.0, 0.0, 1.0, pixels), fill, interpolation)
