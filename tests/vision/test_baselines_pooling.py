"""ConvNet baseline pooling: max/mean/sum over windows, and ⌈(N − F)/S⌉ + 1
(ceil-mode) pooling for sizes the window does not tile, against torch."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vision import baselines


@pytest.mark.parametrize('size,f,s', [(7, 2, 2), (5, 3, 2), (8, 2, 2), (5, 1, 3), (9, 3, 3)])
def test_ceil_mode_matches_torch(size, f, s):
  x = np.random.default_rng(0).normal(size=(2, size, size + 1, 3)).astype(np.float32)
  t = torch.from_numpy(x).permute(0, 3, 1, 2)
  refs = {
      'max': F.max_pool2d(t, f, s, ceil_mode=True),
      'avg': F.avg_pool2d(t, f, s, ceil_mode=True),
      'sum': F.avg_pool2d(t, f, s, ceil_mode=True, divisor_override=1),
  }
  for kind, ref in refs.items():
    out = np.asarray(baselines.pool2d(x, kind, f, s, ceil=True))
    np.testing.assert_allclose(out, ref.permute(0, 2, 3, 1).numpy(), rtol=1e-6, atol=1e-6,
                               err_msg=kind)
    assert out.shape[1] == baselines.pool_output_size(size, f, s, True)


def test_ceil_halves_odd_widths():
  assert [baselines.pool_output_size(w, 2, 2, True) for w in (5, 6, 7)] == [3, 3, 4]
  with pytest.raises(ValueError, match='does not tile'):
    baselines.pool_output_size(7, 2, 2, False)


def test_sum_pool_by_hand():
  x = np.arange(16, dtype=np.float32).reshape(1, 4, 4, 1)
  out = np.asarray(baselines.pool2d(x, 'sum', 2, 2))[0, ..., 0]
  np.testing.assert_array_equal(out, [[0 + 1 + 4 + 5, 2 + 3 + 6 + 7], [8 + 9 + 12 + 13,
                                                                         10 + 11 + 14 + 15]])


def test_convnet_on_a_non_tiling_size():
  import jax  # pylint: disable=g-import-not-at-top
  m = baselines.ConvNet(img_size=7, channels=(4, 8), pool='sum', pool_ceil=True,
                        fc_widths=())
  assert m.feature_sizes() == [(4, 4), (2, 2)]  # ⌈7/2⌉ = 4, ⌈4/2⌉ = 2
  x = np.ones((2, 7, 7, 1), np.float32)
  logits = m.apply(m.init(jax.random.PRNGKey(0), x), x)
  assert logits.shape == (2, 10)
  with pytest.raises(ValueError, match='does not tile'):
    baselines.ConvNet(img_size=7, channels=(4,)).feature_sizes()


def test_leaky_relu_slope_and_identity():
  import jax  # pylint: disable=g-import-not-at-top
  x = np.linspace(-2, 2, 9, dtype=np.float32)
  act = baselines.Activation('leaky_relu', negative_slope=0.1)
  np.testing.assert_allclose(act.apply({}, x), np.where(x > 0, x, 0.1 * x), rtol=1e-7)
  np.testing.assert_array_equal(baselines.Activation('identity').apply({}, x), x)
  m = baselines.MLP(activation='leaky_relu', leaky_slope=0.1, depth=1, width=4, img_size=2)
  img = -np.ones((1, 2, 2, 1), np.float32)
  v = m.init(jax.random.PRNGKey(0), img)
  h = img.reshape(1, -1) @ v['params']['fc0']['kernel'] + v['params']['fc0']['bias']
  h = np.where(h > 0, h, 0.1 * h)
  ref = h @ v['params']['head']['kernel'] + v['params']['head']['bias']
  np.testing.assert_allclose(m.apply(v, img), ref, rtol=1e-5)
