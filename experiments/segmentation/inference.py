"""Dense inference at the label resolution: whole image, or sliding window.

Whole image (mmseg `mode='whole'`): one forward pass, logits bilinearly
resized (half-pixel centres, `align_corners=False`, no antialiasing, as
torch's `F.interpolate`) to the output size.

Sliding window (mmseg `mode='slide'`): crops of `crop = (ch, cw)` at stride
`(sh, sw)`; along each axis of length L there are
`n = max(L − c + s − 1, 0) // s + 1` windows, window k spans
`[max(min(k s + c, L) − c, 0), min(k s + c, L))` (the last one is shifted
back to end at the border). Each window's logits are resized to the window,
added into the full canvas, and the canvas divided by how many windows cover
each pixel:

    z[i, j] = (1 / N[i, j]) Σ_{windows w ∋ (i, j)} z_w[i − y_w, j − x_w]

A window larger than the image is clipped to it, so with `crop ≥ (H, W)`
sliding-window inference is exactly whole-image inference. All windows of a
batch go through the model in one call (stacked on the batch axis).
"""
from __future__ import annotations

from typing import Callable, Sequence

import chex
import jax
import jax.numpy as jnp

from vision import decoders

ApplyFn = Callable[[jax.Array], jax.Array]


def resize_logits(logits: jax.Array, size: Sequence[int]) -> jax.Array:
  """Bilinear (align_corners=False) resize of `[B, h, w, K]` logits to `[B, *size, K]`.

  2-D maps go through `vision.decoders.resize_bilinear` (elementwise for
  integer upsampling factors, the usual ×4 from SegFormer's logits).
  """
  size = tuple(int(s) for s in size)
  if tuple(logits.shape[1:-1]) == size:
    return logits
  if logits.ndim == 4 and len(size) == 2:
    return decoders.resize_bilinear(logits, size)
  shape = (logits.shape[0], *size, logits.shape[-1])
  return jax.image.resize(logits, shape, method='bilinear', antialias=False)


def whole_inference(apply_fn: ApplyFn, images: jax.Array,
                    out_size: Sequence[int] | None = None) -> jax.Array:
  """Logits `[B, H', W', K]` of `apply_fn(images)` resized to `out_size` (default: image size)."""
  chex.assert_rank(images, 4)
  return resize_logits(apply_fn(images), out_size or images.shape[1:3])


def window_starts(length: int, crop: int, stride: int) -> list[int]:
  """Start offsets of the sliding windows along one axis (see module docstring)."""
  if crop < 1 or stride < 1:
    raise ValueError(f'crop={crop} and stride={stride} must be positive')
  n = max(length - crop + stride - 1, 0) // stride + 1
  return [max(min(k * stride + crop, length) - crop, 0) for k in range(n)]


def slide_inference(apply_fn: ApplyFn, images: jax.Array, crop: Sequence[int],
                    stride: Sequence[int], out_size: Sequence[int] | None = None) -> jax.Array:
  """Overlap-averaged sliding-window logits `[B, H, W, K]` (resized to `out_size` if given).

  Args:
    apply_fn: images `[N, ch, cw, C]` -> logits `[N, h, w, K]` (any h, w).
    images: `[B, H, W, C]`.
    crop: window `(ch, cw)`; clipped to the image when larger.
    stride: `(sh, sw)`; `stride ≤ crop` leaves no pixel uncovered.
  """
  chex.assert_rank(images, 4)
  b, h, w, _ = images.shape
  (ch, cw), (sh, sw) = tuple(crop), tuple(stride)
  if sh > ch or sw > cw:
    raise ValueError(f'stride={tuple(stride)} exceeds crop={tuple(crop)}: pixels between '
                     'windows would get no prediction; use stride <= crop')
  ch, cw = min(ch, h), min(cw, w)
  boxes = [(y, x) for y in window_starts(h, ch, sh) for x in window_starts(w, cw, sw)]
  tiles = jnp.concatenate([images[:, y:y + ch, x:x + cw] for y, x in boxes], axis=0)
  logits = resize_logits(apply_fn(tiles), (ch, cw)).astype(jnp.float32)
  k = logits.shape[-1]
  canvas = jnp.zeros((b, h, w, k), jnp.float32)
  count = jnp.zeros((1, h, w, 1), jnp.float32)
  for t, (y, x) in enumerate(boxes):
    canvas = canvas.at[:, y:y + ch, x:x + cw].add(logits[t * b:(t + 1) * b])
    count = count.at[:, y:y + ch, x:x + cw].add(1.0)
  out = canvas / count
  return out if out_size is None else resize_logits(out, out_size)
