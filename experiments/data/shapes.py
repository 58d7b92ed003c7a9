"""`shapes`: a generated semantic-segmentation dataset (no download), deterministic by seed.

Each `S×S` RGB image holds 2–5 overlapping shapes on a textured background;
the label map is exact per pixel (a pixel belongs to a shape when its centre
(i + ½, j + ½) is inside it; later shapes occlude earlier ones, and the
image is painted from the same masks, so no pixel is ambiguous).

Classes (`CLASSES`): 0 background, 1 disk, 2 rotated rectangle, 3 triangle,
4 ring (annulus). Sizes vary from 12% to 35% of the image side (radius or
half-diagonal). Colours: each class has a base hue (disk red, rectangle
green, triangle blue, ring yellow) jittered by ±0.05 in hue, with random
saturation in [0.45, 1] and value in [0.45, 1]; each shape is modulated by
sinusoidal stripes of random frequency and orientation (±20% brightness).
The background is a random low-saturation linear gradient with its own
stripes, and every pixel gets Gaussian noise σ = 0.04, so colour alone is
not quite enough and shape matters.

Example i of split s is drawn from `np.random.default_rng([seed, s, i])`
(train s=0, test s=1; 2000 and 250 examples, `train[:N]` takes
the first N): the dataset is a pure function of (seed, size), and
any example can be regenerated on its own.
"""
from __future__ import annotations

import colorsys
import functools

import numpy as np

CLASSES = ('background', 'disk', 'rectangle', 'triangle', 'ring')
NUM_CLASSES = len(CLASSES)
SPLITS = {'train': (0, 2000), 'test': (1, 250)}
_HUES = {1: 0.0, 2: 0.33, 3: 0.63, 4: 0.15}


def _parse(split: str) -> tuple[int, int]:
  """(split id, size) of 'train' | 'test' | 'train[:N]' | 'test[:N]'."""
  base, _, rest = split.partition('[:')
  if base not in SPLITS or (rest and not (rest.endswith(']') and rest[:-1].isdigit())):
    raise ValueError(f"shapes split={split!r}; valid: 'train', 'test', or 'train[:N]', "
                     "'test[:N]' (the first N examples)")
  split_id, n = SPLITS[base]
  if rest:
    n = min(n, int(rest[:-1]))
    if n < 1:
      raise ValueError(f'shapes split={split!r} is empty')
  return split_id, n


def num_examples(split: str) -> int:
  return _parse(split)[1]


def _stripes(rng: np.random.Generator, yy: np.ndarray, xx: np.ndarray, size: int) -> np.ndarray:
  theta = rng.uniform(0, np.pi)
  freq = rng.uniform(2.0, 8.0) * 2 * np.pi / size
  phase = rng.uniform(0, 2 * np.pi)
  return np.sin(freq * (np.cos(theta) * xx + np.sin(theta) * yy) + phase)


def _shape_mask(kind: int, rng: np.random.Generator, yy: np.ndarray, xx: np.ndarray,
                size: int) -> np.ndarray:
  r = rng.uniform(0.12, 0.35) * size
  cy, cx = rng.uniform(0.1, 0.9, size=2) * size
  dy, dx = yy - cy, xx - cx
  if kind == 1:
    return dy * dy + dx * dx <= r * r
  if kind == 4:
    d2 = dy * dy + dx * dx
    return (d2 <= r * r) & (d2 >= (r * rng.uniform(0.45, 0.7)) ** 2)
  theta = rng.uniform(0, np.pi)
  c, s = np.cos(theta), np.sin(theta)
  u, v = c * dx + s * dy, -s * dx + c * dy
  if kind == 2:
    aspect = rng.uniform(0.5, 1.0)
    return (np.abs(u) <= r * np.sqrt(1 / (1 + aspect**2))) & (
        np.abs(v) <= r * aspect * np.sqrt(1 / (1 + aspect**2)))
  # Triangle: intersection of three half-planes of an equilateral triangle of circumradius r.
  inside = np.ones_like(u, bool)
  for k in range(3):
    a = 2 * np.pi * k / 3
    inside &= np.cos(a) * u + np.sin(a) * v <= r / 2
  return inside


def example(seed: int, split_id: int, index: int, size: int) -> tuple[np.ndarray, np.ndarray]:
  """(uint8 image `[S, S, 3]`, uint8 labels `[S, S]`) of one example."""
  rng = np.random.default_rng([seed & 0xFFFFFFFF, split_id, index])
  yy, xx = np.meshgrid(np.arange(size) + 0.5, np.arange(size) + 0.5, indexing='ij')
  # Background: low-saturation gradient plus faint stripes.
  c0, c1 = rng.uniform(0.2, 0.8, size=(2, 3)) * 0.6 + rng.uniform(0.1, 0.3)
  t = xx * rng.uniform(-1, 1) + yy * rng.uniform(-1, 1)
  t = (t - t.min()) / max(t.max() - t.min(), 1e-6)
  image = c0 * (1 - t[..., None]) + c1 * t[..., None]
  image *= 1 + 0.1 * _stripes(rng, yy, xx, size)[..., None]
  labels = np.zeros((size, size), np.uint8)
  for _ in range(rng.integers(2, 6)):
    kind = int(rng.integers(1, NUM_CLASSES))
    mask = _shape_mask(kind, rng, yy, xx, size)
    hue = (_HUES[kind] + rng.uniform(-0.05, 0.05)) % 1.0
    rgb = np.array(colorsys.hsv_to_rgb(hue, rng.uniform(0.45, 1), rng.uniform(0.45, 1)))
    texture = 1 + 0.2 * _stripes(rng, yy, xx, size)
    image[mask] = (rgb[None] * texture[mask][:, None])
    labels[mask] = kind
  image += rng.normal(0, 0.04, image.shape)
  return (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8), labels


@functools.lru_cache(maxsize=4)  # generation takes seconds; results are never mutated
def load(split: str, size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
  """All of `split` at `size`×`size`: uint8 images `[N, S, S, 3]`, uint8 labels `[N, S, S]`."""
  split_id, n = _parse(split)
  pairs = [example(seed, split_id, i, size) for i in range(n)]
  return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])
