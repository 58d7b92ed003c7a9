r"""Convolution is shift-equivariant, pooling adds local invariance, a fully
connected layer is neither (deck 001).

    python -m experiments.course --only=shift_equivariance --out=/tmp/course
    # -> shift_equivariance.png

For a conv layer z = conv(x) (3×3, 8 filters, stride 1, circular padding so
the statement is exact at the borders too) and a cyclic shift S by (dy, dx)
pixels, equivariance is conv(Sx) = S conv(x). A fully connected layer
y = Wx on the flattened image has no such structure: W(Sx) ≠ S(Wx) for a
generic W. A max pool of size P after the conv reduces the change a shift
by less than P pixels causes, measured as

    d(f) = ‖f(Sx) − f(x)‖ / ‖f(x)‖

for f = ReLU∘conv and f = maxpool_P∘ReLU∘conv, averaged over digits
(scikit-learn's, 8×8 upsampled to 32×32) and one-pixel shifts.

Claims: ‖conv(Sx) − S conv(x)‖/‖conv(x)‖ < 1e-6 for every shift; the same
residual for the FC layer (reshaped to an image) is > 0.5; d(pool_4) <
0.9·d(conv) for 1-pixel shifts (measured ≈ 0.77: the digits are smooth
after upsampling, so a 1-pixel move changes the conv features little to begin
with).
"""
from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np

from experiments.course import figure
from experiments.course.claim import Claim, greater, less
from experiments.data import digits

SIZE, FILTERS, POOL = 32, 8, 4
SHIFTS = ((0, 1), (1, 0), (1, 1), (2, 3), (5, -4))


def images(n: int) -> np.ndarray:
  x = digits.load('train').images[:n] / 16.0
  return np.asarray(jax.image.resize(x, (n, SIZE, SIZE, 1), 'linear'))


def conv(x: jax.Array, w: jax.Array) -> jax.Array:
  """3×3 convolution with circular padding (NHWC, HWIO)."""
  x = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode='wrap')
  return jax.lax.conv_general_dilated(x, w, (1, 1), 'VALID',
                                      dimension_numbers=('NHWC', 'HWIO', 'NHWC'))


def shift(x: jax.Array, dy: int, dx: int) -> jax.Array:
  return jnp.roll(x, (dy, dx), axis=(1, 2))


def rel(a: jax.Array, b: jax.Array) -> float:
  return float(jnp.linalg.norm(a - b) / jnp.linalg.norm(b))


def run(out: str, quick: bool = False) -> dict[str, Claim]:
  x = jnp.asarray(images(32 if quick else 256))
  kw, kf = jax.random.split(jax.random.PRNGKey(0))
  w = jax.random.normal(kw, (3, 3, 1, FILTERS)) / 3.0
  fc = jax.random.normal(kf, (SIZE * SIZE, SIZE * SIZE)) / SIZE
  dense = lambda v: (v.reshape(v.shape[0], -1) @ fc).reshape(v.shape)  # noqa: E731
  feat = lambda v: jax.nn.relu(conv(v, w))  # noqa: E731
  pooled = lambda v: jax.lax.reduce_window(feat(v), -jnp.inf, jax.lax.max,  # noqa: E731
                                           (1, POOL, POOL, 1), (1, POOL, POOL, 1), 'VALID')
  conv_err = max(rel(conv(shift(x, *s), w), shift(conv(x, w), *s)) for s in SHIFTS)
  fc_err = min(rel(dense(shift(x, *s)), shift(dense(x), *s)) for s in SHIFTS)
  ones = [(0, 1), (1, 0), (1, 1), (0, -1), (-1, 0)]
  d_conv = float(np.mean([rel(feat(shift(x, *s)), feat(x)) for s in ones]))
  d_pool = float(np.mean([rel(pooled(shift(x, *s)), pooled(x)) for s in ones]))
  plot(x[0], w, dense, pooled, os.path.join(out, 'shift_equivariance.png'))
  return {
      'conv: max ‖conv(Sx) − S conv(x)‖ / ‖conv(x)‖': less(conv_err, 1e-6),
      'fully connected: min ‖W(Sx) − S(Wx)‖ / ‖Wx‖': greater(fc_err, 0.5),
      f'1-px shift: d(maxpool{POOL}∘conv) / d(conv)': less(d_pool / d_conv, 0.9),
  }


def plot(x: jax.Array, w: jax.Array, dense, pooled, path: str) -> None:
  """Rows: the image and its (2, 3) shift; conv; FC; pooled features."""
  s = (2, 3)
  xs = x[None]
  panels = [
      ('input x', xs, shift(xs, *s)),
      ('conv (filter 0)', conv(xs, w)[..., :1], conv(shift(xs, *s), w)[..., :1]),
      ('fully connected', dense(xs), dense(shift(xs, *s))),
      (f'maxpool {POOL}×{POOL} of ReLU∘conv', pooled(xs)[..., :1],
       pooled(shift(xs, *s))[..., :1]),
  ]
  fig, axes = figure.new(len(panels), 2, width=2.6, height=2.6)
  for j, (name, a, b) in enumerate(panels):
    for i, (img, tag) in enumerate(((a, 'of x'), (b, f'of x shifted by {s} px'))):
      ax = axes[i][j]
      ax.imshow(np.asarray(img)[0, ..., 0], cmap='viridis')
      ax.set_title(f'{name}\n{tag}', fontsize=7)
      ax.set_xlabel('column (px)', fontsize=6)
      ax.set_ylabel('row (px)', fontsize=6)
      ax.tick_params(labelsize=5)
  figure.save(fig, path, 'conv output moves with the input; FC output does not; pooling blurs '
              'small moves')
