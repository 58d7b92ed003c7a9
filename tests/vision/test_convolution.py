"""The course's claims about convolution, checked on flax's `nn.Conv` and pooling.

1. A conv layer is a matrix multiplication: y = T·vec(x) + b with T doubly
   block Toeplitz (zero padding) or doubly block circulant (circular padding);
   the circulant one is diagonalised by the 2-D DFT (convolution theorem).
2. Convolution is translation-equivariant, conv(shift(x)) = shift(conv(x));
   max pooling is locally invariant to shifts inside its window.
3. Output side (N − F + 2P)/S + 1 and F²·C·K + K parameters.
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

from vision import baselines


def _randn(seed: int, shape: tuple[int, ...]) -> np.ndarray:
  return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def toeplitz_matrix(kernel: np.ndarray, n: int, stride: int, pad: int) -> np.ndarray:
  """T with vec(conv(x)) = T·vec(x), x of shape [n, n, C] (row-major vec), HWIO kernel.

  Row (oh, ow, k), column (h, w, c) holds W[h − oh·S + P, w − ow·S + P, c, k]
  when that tap exists: the cross-correlation written as one matrix.
  """
  f, _, c_in, c_out = kernel.shape
  m = (n - f + 2 * pad) // stride + 1
  t = np.zeros((m, m, c_out, n, n, c_in), np.float64)
  for oh in range(m):
    for ow in range(m):
      for i in range(f):
        for j in range(f):
          h, w = oh * stride + i - pad, ow * stride + j - pad
          if 0 <= h < n and 0 <= w < n:
            t[oh, ow, :, h, w, :] = kernel[i, j].T
  return t.reshape(m * m * c_out, n * n * c_in)


def _conv(features, f, stride, pad, x, seed=0):
  """An `nn.Conv` with random float32 kernel and bias (set directly: no init compile)."""
  layer = nn.Conv(features, (f, f), strides=stride, padding=pad)
  variables = {'params': {'kernel': _randn(seed + 100, (f, f, x.shape[-1], features)),
                          'bias': _randn(seed + 200, (features,))}}
  return layer, variables


@pytest.mark.parametrize('n,f,c,k,s,p', [(6, 3, 1, 1, 1, 1), (7, 3, 2, 3, 2, 0), (5, 2, 3, 2, 1, 1)])
def test_conv_equals_toeplitz_matrix_product(n, f, c, k, s, p):
  x = _randn(0, (2, n, n, c))
  layer, variables = _conv(k, f, s, ((p, p), (p, p)), x)
  kernel = np.asarray(variables['params']['kernel'])
  bias = np.asarray(variables['params']['bias'])
  t = toeplitz_matrix(kernel, n, s, p)
  m = (n - f + 2 * p) // s + 1
  expected = (x.reshape(2, -1).astype(np.float64) @ t.T).reshape(2, m, m, k) + bias
  np.testing.assert_allclose(layer.apply(variables, x), expected, atol=1e-5)


def test_single_channel_toeplitz_is_doubly_block_toeplitz():
  """Block (oh, h) depends only on h − oh, and inside it entry (ow, w) only on w − ow."""
  kernel = _randn(1, (3, 3, 1, 1))
  n = 5
  t = toeplitz_matrix(kernel, n, 1, 1).reshape(n, n, n, n)  # [oh, ow, h, w]
  blocks = {}
  for oh in range(n):
    for h in range(n):
      block = t[oh, :, h, :]
      blocks.setdefault(h - oh, block)
      np.testing.assert_array_equal(block, blocks[h - oh])
      for ow in range(n):
        for w in range(n):
          if ow > 0 and w > 0:
            assert block[ow, w] == block[ow - 1, w - 1]
  assert set(blocks) == set(range(-(n - 1), n))


def test_circular_conv_is_a_doubly_block_circulant_diagonalised_by_the_dft():
  n = 6
  x = _randn(2, (1, n, n, 1))
  layer, variables = _conv(1, 3, 1, 'CIRCULAR', x)
  w = np.asarray(variables['params']['kernel'])[:, :, 0, 0].astype(np.float64)
  # Kernel embedded on the n×n torus: y[a, b] = Σ_ij w[i, j] x[a + i − 1, b + j − 1].
  g = np.zeros((n, n))
  for i in range(3):
    for j in range(3):
      g[(1 - i) % n, (1 - j) % n] += w[i, j]
  # Doubly block circulant: block (a, h) = C_{(a − h) mod n}, C_r = circulant(g[r]).
  blocks = [scipy.linalg.circulant(g[r]) for r in range(n)]
  t = np.block([[blocks[(a - h) % n] for h in range(n)] for a in range(n)])
  y = layer.apply(variables, x) - variables['params']['bias']
  np.testing.assert_allclose(np.asarray(y).reshape(-1), t @ x.reshape(-1), atol=1e-5)
  # Convolution theorem: Fourier modes are eigenvectors, eigenvalues = DFT of the kernel.
  eig = np.fft.fft2(g)
  for u, v in [(0, 0), (1, 2), (3, 5)]:
    mode = np.exp(2j * np.pi * (u * np.arange(n)[:, None] + v * np.arange(n)[None]) / n)
    np.testing.assert_allclose(t @ mode.reshape(-1), eig[u, v] * mode.reshape(-1), atol=1e-9)


def test_circular_conv_is_exactly_translation_equivariant():
  x = _randn(3, (2, 8, 8, 3))
  layer, variables = _conv(4, 3, 1, 'CIRCULAR', x)
  for shift in [(1, 0), (2, 5), (-3, 1)]:
    np.testing.assert_allclose(layer.apply(variables, np.roll(x, shift, axis=(1, 2))),
                               np.roll(layer.apply(variables, x), shift, axis=(1, 2)), atol=1e-5)


def test_zero_padded_conv_is_equivariant_away_from_the_border():
  x = np.zeros((1, 12, 12, 2), np.float32)
  x[:, 3:7, 2:6] = _randn(4, (1, 4, 4, 2))  # an object well inside the image
  layer, variables = _conv(3, 3, 1, 'SAME', x)
  shifted = layer.apply(variables, np.roll(x, (2, 3), axis=(1, 2)))
  np.testing.assert_allclose(shifted, np.roll(layer.apply(variables, x), (2, 3), axis=(1, 2)),
                             atol=1e-5)


def test_strided_conv_is_equivariant_to_shifts_by_the_stride():
  x = _randn(5, (1, 8, 8, 1))
  layer, variables = _conv(2, 2, 2, 'CIRCULAR', x)
  np.testing.assert_allclose(layer.apply(variables, np.roll(x, 2, axis=1)),
                             np.roll(layer.apply(variables, x), 1, axis=1), atol=1e-5)


def test_max_pool_is_locally_invariant():
  """Moving every peak inside its 2×2 window changes every input pixel but no pooled output."""
  rng = np.random.default_rng(6)
  peaks = rng.uniform(1, 2, (4, 4)).astype(np.float32)
  x = np.zeros((1, 8, 8, 1), np.float32)
  x[0, 0::2, 0::2, 0] = peaks           # each peak in the top-left corner of its window
  moved = np.roll(x, (1, 1), axis=(1, 2))  # ... now in the bottom-right corner
  assert np.abs(moved - x).max() > 1
  pool = lambda z: nn.max_pool(jnp.asarray(z), (2, 2), (2, 2))  # noqa: E731
  np.testing.assert_array_equal(pool(x), pool(moved))
  np.testing.assert_array_equal(pool(x)[0, ..., 0], peaks)
  # Crossing a window border is not absorbed: the pooled map shifts instead.
  crossed = np.roll(x, (2, 0), axis=(1, 2))
  np.testing.assert_array_equal(pool(crossed), np.roll(pool(x), 1, axis=1))
  assert not np.array_equal(pool(crossed), pool(x))


@pytest.mark.parametrize('n,f,s,p,out', [
    (7, 3, 1, 0, 5), (7, 3, 2, 0, 3),          # CS231n's 7×7 examples
    (32, 5, 1, 2, 32),                          # 'same' with P = (F − 1)/2
    (227, 11, 4, 0, 55),                        # AlexNet conv1
    (224, 16, 16, 0, 14),                       # ViT-B/16 patch embedding
])
def test_output_size_formula(n, f, s, p, out):
  assert baselines.conv_output_size(n, f, s, p) == out == (n - f + 2 * p) // s + 1
  layer = nn.Conv(4, (f, f), strides=s, padding=((p, p), (p, p)))
  x = jax.ShapeDtypeStruct((1, n, n, 3), jnp.float32)
  shapes = jax.eval_shape(layer.init_with_output, jax.random.PRNGKey(0), x)
  assert shapes[0].shape == (1, out, out, 4)


def test_output_size_that_does_not_tile_raises():
  with pytest.raises(ValueError, match=r'\(7 − 3 \+ 2·0\)/3 \+ 1 = 2\.33333 is not a positive integer'):
    baselines.conv_output_size(7, 3, 3, 0)


@pytest.mark.parametrize('f,c,k,count', [(5, 3, 10, 760), (11, 3, 96, 34_944), (3, 64, 64, 36_928)])
def test_parameter_count_f2ck_plus_k(f, c, k, count):
  layer = nn.Conv(k, (f, f))
  shapes = jax.eval_shape(layer.init, jax.random.PRNGKey(0),
                          jax.ShapeDtypeStruct((1, 16, 16, c), jnp.float32))
  assert sum(v.size for v in jax.tree.leaves(shapes)) == f * f * c * k + k == count
