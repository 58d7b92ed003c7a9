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

Back to the label resolution (mmseg `postprocess_result`): eval images are
resized to fit the canvas and padded, so example b's prediction is the
`image_size[b] = (h, w)` top-left block of the canvas logits, bilinearly
resized to its original label size `label_size[b] = (H, W)`.
`resize_to_labels` does this with per-example (traced) sizes, so one compiled
function serves every image: along each axis, output index o reads the
block at u = max((o + ½)·h/H − ½, 0), i.e. rows ⌊u⌋ and min(⌊u⌋ + 1, h − 1)
with weights 1 − (u − ⌊u⌋) and u − ⌊u⌋ (torch's `upsample_bilinear2d`
index and weight rule), so padding never leaks into the border pixels.
Outputs beyond (H, W) are filler for the label canvas's padding (ignore).
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence

import chex
import jax
import jax.numpy as jnp

from vision import decoders
from vision import kernels

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


def at_label_size(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """`logits` resized to the spatial size of `labels` (unchanged for per-image labels)."""
  return resize_logits(logits, labels.shape[1:]) if labels.ndim > 1 else logits


def label_pairs(logits: jax.Array, labels: jax.Array) -> list[tuple[jax.Array, jax.Array]]:
  """(logits at label size, labels) pairs whose per-pixel sums are the image's.

  The phases of `label_phases` at an integer upsampling factor, so the
  upsampled logits are never materialised; else one pair, `at_label_size`.
  """
  return label_phases(logits, labels) or [(at_label_size(logits, labels), labels)]


def label_phases(logits: jax.Array, labels: jax.Array
                 ) -> Optional[list[tuple[jax.Array, jax.Array]]]:
  """[(up(z)[:, r::s_h, t::s_w], y[:, r::s_h, t::s_w])] over the s_h·s_w phases, or None.

  For `[B, h, w, K]` logits z and `[B, H, W]` labels y with H = s_h·h and
  W = s_w·w (integer factors, not both 1), up = `resize_logits` to (H, W);
  each pair is `[B, h, w, K]`, `[B, h, w]` (`vision.kernels.upsample_phases`).
  A per-pixel quantity summed over the image equals its sum over the pairs.
  None for any other shapes.
  """
  if logits.ndim != 4 or labels.ndim != 3:
    return None
  (h, w), (big_h, big_w) = logits.shape[1:3], labels.shape[1:]
  if big_h % h or big_w % w or (big_h, big_w) == (h, w):
    return None
  sh, sw = big_h // h, big_w // w
  phases = kernels.upsample_phases(logits, (sh, sw))
  return [(phases[r][t], labels[:, r::sh, t::sw]) for r in range(sh) for t in range(sw)]


def whole_inference(apply_fn: ApplyFn, images: jax.Array,
                    out_size: Sequence[int] | None = None) -> jax.Array:
  """Logits `[B, H', W', K]` of `apply_fn(images)` resized to `out_size` (default: image size)."""
  chex.assert_rank(images, 4)
  return resize_logits(apply_fn(images), out_size or images.shape[1:3])


def _taps(out_len: int, valid_in: jax.Array, valid_out: jax.Array
          ) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Source rows `(i0, i1)` and weight of i1 for resizing `valid_in` samples to `valid_out`."""
  scale = valid_in.astype(jnp.float32) / valid_out.astype(jnp.float32)
  u = jnp.maximum(scale * (jnp.arange(out_len, dtype=jnp.float32) + 0.5) - 0.5, 0.0)
  i0 = jnp.minimum(u.astype(jnp.int32), valid_in - 1)
  i1 = jnp.minimum(i0 + 1, valid_in - 1)
  return i0, i1, jnp.clip(u - i0.astype(jnp.float32), 0.0, 1.0)


def _resize_block(logits: jax.Array, image_size: jax.Array, label_size: jax.Array,
                  canvas: tuple[int, int]) -> jax.Array:
  """One example: `[Hc, Wc, K]` canvas logits -> `[*canvas, K]` (see module docstring)."""
  for axis in (0, 1):
    i0, i1, lam = _taps(canvas[axis], image_size[axis], label_size[axis])
    shape = (-1, 1, 1) if axis == 0 else (1, -1, 1)
    lam = lam.reshape(shape)
    logits = (jnp.take(logits, i0, axis=axis) * (1.0 - lam)
              + jnp.take(logits, i1, axis=axis) * lam)
  return logits


def resize_to_labels(logits: jax.Array, image_size: jax.Array, label_size: jax.Array,
                     canvas: Sequence[int]) -> jax.Array:
  """Each example's valid logits block resized to its original label size.

  Args:
    logits: `[B, Hc, Wc, K]` at the (padded) eval canvas resolution.
    image_size: int `[B, 2]`, the `(h, w)` of the resized image in the canvas.
    label_size: int `[B, 2]`, the `(H, W)` of the original label map.
    canvas: static `(Lh, Lw)` of the label batch (≥ every `label_size`).

  Returns:
    float32 `[B, Lh, Lw, K]`; `[b, :H, :W]` is torch's
    `interpolate(logits[b, :h, :w], (H, W), 'bilinear', align_corners=False)`.
  """
  chex.assert_rank(logits, 4)
  chex.assert_shape([image_size, label_size], (logits.shape[0], 2))
  canvas = (int(canvas[0]), int(canvas[1]))
  fn = lambda z, i, l: _resize_block(z, i, l, canvas)  # noqa: E731
  return jax.vmap(fn)(logits.astype(jnp.float32), image_size.astype(jnp.int32),
                      label_size.astype(jnp.int32))


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
