"""vision.kernels: mode selection, the cuDNN rule, and every tuned kernel against its
portable spelling (values and gradients, float32 and bfloat16) and against torch."""
import concurrent.futures

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vision import kernels

# (value, gradient) tolerances: the two spellings sum in different orders, so they
# agree to a few ulps of the compute dtype times the reduction length.
TOL = {jnp.float32: (2e-5, 5e-5), jnp.bfloat16: (3e-2, 6e-2)}


def _randn(seed, shape, dtype=jnp.float32):
  return jnp.asarray(np.random.default_rng(seed).normal(size=shape), dtype)


def _both(fn, *args):
  """fn and the gradient of Σ fn·w w.r.t. every float arg, traced once per mode."""
  out = {}
  for mode in ('tuned', 'portable'):
    with kernels.use(mode):
      y = jax.jit(lambda *a: fn(*a))(*args)
      w = _randn(99, y.shape, y.dtype)
      grads = jax.jit(jax.grad(lambda *a: jnp.sum((fn(*a) * w).astype(jnp.float32)),
                               argnums=tuple(range(len(args)))))(*args)
    out[mode] = (y, grads)
  return out


def _assert_same(out, dtype, scale=1.0):
  atol, gtol = TOL[dtype]
  (y_t, g_t), (y_p, g_p) = out['tuned'], out['portable']
  assert y_t.dtype == y_p.dtype == jnp.dtype(dtype)
  np.testing.assert_allclose(np.asarray(y_t, np.float32), np.asarray(y_p, np.float32),
                             atol=atol * scale, rtol=atol)
  for a, b in zip(g_t, g_p):
    assert a.dtype == b.dtype
    np.testing.assert_allclose(np.asarray(a, np.float32), np.asarray(b, np.float32),
                               atol=gtol * scale, rtol=gtol)


# Mode selection ----------------------------------------------------------------

def test_mode_defaults_to_auto_and_reads_the_environment(monkeypatch):
  monkeypatch.delenv(kernels.ENV_VAR, raising=False)
  assert kernels.mode() == 'auto'
  monkeypatch.setenv(kernels.ENV_VAR, 'portable')
  assert kernels.mode() == 'portable'
  with kernels.use('tuned'):  # the context wins over the environment
    assert kernels.mode() == 'tuned'
    with kernels.use('auto'):
      assert kernels.mode() == 'auto'
    assert kernels.mode() == 'tuned'
  assert kernels.mode() == 'portable'
  monkeypatch.setenv(kernels.ENV_VAR, 'fast')
  with pytest.raises(ValueError, match="VISOPT_KERNELS='fast' is not a kernel mode; valid: "
                                       'auto, portable, tuned'):
    kernels.mode()


def test_use_rejects_unknown_modes_and_restores_after_an_exception():
  with pytest.raises(ValueError, match="kernel mode='gpu'"):
    with kernels.use('gpu'):
      pass
  with pytest.raises(RuntimeError):
    with kernels.use('portable'):
      raise RuntimeError
  assert kernels.mode() == 'auto'


def test_use_is_local_to_its_thread():
  with kernels.use('portable'):
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
      assert pool.submit(kernels.mode).result() == 'auto'
    assert kernels.mode() == 'portable'


def test_mode_decides_the_traced_program():
  """'tuned' and 'auto' on CPU trace the shift-and-add conv; 'portable' a grouped conv."""
  x, k = jnp.zeros((1, 5, 5, 4)), jnp.zeros((3, 3, 1, 4))
  # A fresh function per trace: jax caches traces by function, not by mode.
  for mode, has_conv in (('tuned', False), ('portable', True)):
    with kernels.use(mode):
      jaxpr = str(jax.make_jaxpr(lambda x, k: kernels.depthwise_conv(x, k))(x, k))
    assert ('conv_general_dilated' in jaxpr) == has_conv, mode
  with kernels.use('auto'):
    jaxpr = str(jax.make_jaxpr(lambda x, k: kernels.depthwise_conv(x, k))(x, k))
    hlo = jax.jit(lambda x, k: kernels.depthwise_conv(x, k)).lower(x, k).as_text()
  assert 'platform_index' in jaxpr and 'conv_general_dilated' in jaxpr  # both branches traced
  assert 'convolution' not in hlo  # lowered for CPU: only the tuned branch


# The cuDNN rule ------------------------------------------------------------------

H100, A100, V100 = (9, 0), (8, 0), (7, 0)


@pytest.mark.parametrize('kwargs, expected', [
    (dict(platform='cuda', dtype=jnp.bfloat16, head_dim=64, q_len=197, kv_len=197,
          compute_capability=A100), 'cudnn'),
    (dict(platform='cuda', dtype=jnp.float16, head_dim=128, q_len=3136, kv_len=49,
          compute_capability=A100), 'cudnn'),
    (dict(platform='cuda', dtype=jnp.float32, head_dim=64, q_len=197, kv_len=197,
          compute_capability=H100), 'xla'),                       # float32
    (dict(platform='cuda', dtype=jnp.bfloat16, head_dim=64, q_len=197, kv_len=197,
          compute_capability=V100), 'xla'),                       # pre-Ampere
    (dict(platform='cuda', dtype=jnp.bfloat16, head_dim=64, q_len=197, kv_len=197,
          compute_capability=None), 'xla'),
    (dict(platform='cpu', dtype=jnp.bfloat16, head_dim=64, q_len=197, kv_len=197), 'xla'),
    (dict(platform='rocm', dtype=jnp.bfloat16, head_dim=64, q_len=16, kv_len=16,
          compute_capability=H100), 'xla'),
    (dict(platform='tpu', dtype=jnp.bfloat16, head_dim=64, q_len=16, kv_len=16), 'xla'),
    (dict(platform='cuda', dtype=jnp.bfloat16, head_dim=36, q_len=16, kv_len=16,
          compute_capability=H100), 'xla'),                       # not a multiple of 8
    (dict(platform='cuda', dtype=jnp.bfloat16, head_dim=192, q_len=16, kv_len=16,
          compute_capability=A100), 'xla'),                       # > 128 before Hopper
    (dict(platform='cuda', dtype=jnp.bfloat16, head_dim=192, q_len=16, kv_len=16,
          compute_capability=H100), 'cudnn'),                     # ≤ 256 from Hopper
    (dict(platform='cuda', dtype=jnp.bfloat16, head_dim=264, q_len=16, kv_len=16,
          compute_capability=H100), 'xla'),
    (dict(platform='cuda', dtype=jnp.bfloat16, head_dim=32, q_len=64, kv_len=64,
          bias_shape=(1, 3, 64, 64), batch=8, heads=3, compute_capability=A100), 'cudnn'),
    (dict(platform='cuda', dtype=jnp.bfloat16, head_dim=32, q_len=64, kv_len=64,
          bias_shape=(8, 3, 64, 64), batch=8, heads=3, compute_capability=A100), 'cudnn'),
    (dict(platform='cuda', dtype=jnp.bfloat16, head_dim=32, q_len=49, kv_len=49,
          bias_shape=(1, 3, 49, 49), batch=8, heads=3, compute_capability=A100), 'xla'),
    (dict(platform='cuda', dtype=jnp.bfloat16, head_dim=32, q_len=64, kv_len=64,
          bias_shape=(4, 3, 64, 64), batch=8, heads=3, compute_capability=A100), 'xla'),
    (dict(platform='cuda', dtype=jnp.bfloat16, head_dim=32, q_len=64, kv_len=64,
          bias_shape=(1, 3, 1, 64), batch=8, heads=3, compute_capability=A100), 'xla'),
])
def test_attention_implementation_rule(kwargs, expected):
  assert kernels.attention_implementation(**kwargs) == expected


def test_portable_attention_on_cpu_runs_xla():
  q = _randn(0, (2, 8, 2, 16), jnp.bfloat16)
  with kernels.use('portable'):
    jaxpr = str(jax.make_jaxpr(lambda q: kernels.dot_product_attention(q, q, q))(q))
  assert 'cudnn' not in jaxpr and 'custom_call' not in jaxpr


# Tuned against portable ----------------------------------------------------------

DTYPES = [jnp.float32, jnp.bfloat16]


@pytest.mark.parametrize('dtype', DTYPES)
def test_gelu(dtype):
  x = _randn(0, (4, 33), dtype) * 3
  _assert_same(_both(kernels.gelu, x), dtype)


@pytest.mark.parametrize('dtype', DTYPES)
@pytest.mark.parametrize('shape', [(2, 7, 24), (3, 24), (2, 3, 5, 24)])
def test_dense(dtype, shape):
  x, w = _randn(0, shape, dtype), _randn(1, (24, 10), dtype) / 5
  _assert_same(_both(kernels.dense, x, w), dtype, scale=4)


@pytest.mark.parametrize('dtype', DTYPES)
@pytest.mark.parametrize('size, p', [((16, 12), 4), ((15, 13), 4), ((6, 6), 1)])
def test_patchify(dtype, size, p):
  x, w = _randn(0, (2, *size, 3), dtype), _randn(1, (p, p, 3, 8), dtype) / 4
  out = _both(kernels.patchify, x, w)
  assert out['tuned'][0].shape == (2, size[0] // p, size[1] // p, 8)
  _assert_same(out, dtype, scale=4)


@pytest.mark.parametrize('dtype', DTYPES)
@pytest.mark.parametrize('k', [3, 5])
def test_depthwise_conv(dtype, k):
  x, w = _randn(0, (2, 9, 7, 6), dtype), _randn(1, (k, k, 1, 6), dtype) / k
  _assert_same(_both(kernels.depthwise_conv, x, w), dtype, scale=4)


@pytest.mark.parametrize('dtype', DTYPES)
@pytest.mark.parametrize('with_bias, kv_len', [(False, 10), (True, 10), (False, 3)])
def test_attention(dtype, with_bias, kv_len):
  q = _randn(0, (2, 10, 3, 8), dtype)
  k, v = _randn(1, (2, kv_len, 3, 8), dtype), _randn(2, (2, kv_len, 3, 8), dtype)
  if with_bias:
    bias = _randn(3, (1, 3, 10, kv_len), jnp.float32)
    fn = lambda q, k, v, b: kernels.dot_product_attention(q, k, v, bias=b)  # noqa: E731
    out = _both(fn, q, k, v, bias)
  else:
    out = _both(kernels.dot_product_attention, q, k, v)
  _assert_same(out, dtype, scale=2)


@pytest.mark.parametrize('dtype', DTYPES)
@pytest.mark.parametrize('n, shape', [(1, (3, 5)), (4, (2, 7, 7)), (9, (6,))])
def test_broadcast_leading(dtype, n, shape):
  x = _randn(0, shape, dtype)
  out = _both(lambda x: kernels.broadcast_leading(x, n), x)
  y, (g,) = out['tuned']
  assert y.shape == (n, *shape) and g.shape == shape
  np.testing.assert_array_equal(np.asarray(y, np.float32),
                                np.broadcast_to(np.asarray(x, np.float32), (n, *shape)))
  _assert_same(out, dtype, scale=n)


def test_broadcast_leading_gradient_is_the_sum_over_slices_in_float64(x64):
  del x64
  x = jnp.asarray(np.random.default_rng(0).normal(size=(3, 4, 4)))
  w = jnp.asarray(np.random.default_rng(1).normal(size=(5, 3, 4, 4)))
  for mode in ('tuned', 'portable'):
    with kernels.use(mode):
      g = jax.jit(jax.grad(lambda x: jnp.sum(kernels.broadcast_leading(x, 5) * w)))(x)
    assert g.dtype == jnp.float64
    np.testing.assert_allclose(np.asarray(g), np.asarray(w).sum(0), rtol=1e-13, atol=1e-13)


def test_broadcast_leading_rejects_an_empty_batch():
  with pytest.raises(ValueError, match='n >= 1, got 0'):
    kernels.broadcast_leading(jnp.zeros(3), 0)


@pytest.mark.parametrize('dtype', DTYPES)
@pytest.mark.parametrize('size', [(14, 20), (7, 5), (28, 5)])
def test_resize_bilinear(dtype, size):
  x = _randn(0, (2, 7, 5, 3), dtype)
  _assert_same(_both(lambda x: kernels.resize_bilinear(x, size), x), dtype)


def test_flat_init_draws_the_same_distribution():
  init = jax.nn.initializers.truncated_normal(stddev=0.02)
  key, shape = jax.random.PRNGKey(0), (4, 4, 32, 64)
  with kernels.use('tuned'):
    tuned = jax.jit(kernels.flat_init(init), static_argnums=1)(key, shape)
  with kernels.use('portable'):
    portable = jax.jit(kernels.flat_init(init), static_argnums=1)(key, shape)
  assert tuned.shape == portable.shape == shape and tuned.dtype == portable.dtype
  np.testing.assert_array_equal(tuned, init(key, (int(np.prod(shape)),)).reshape(shape))
  np.testing.assert_array_equal(portable, init(key, shape))
  for a in (tuned, portable):
    # N(0, 0.02²) truncated at ±2σ: std 0.02·0.8796 (the truncated normal's), |x| ≤ 0.04
    assert abs(float(a.mean())) < 5e-4
    assert float(a.std()) == pytest.approx(0.02 * 0.87962566, rel=0.02)
    assert float(jnp.abs(a).max()) <= 0.04 + 1e-6


# Against torch -------------------------------------------------------------------

@pytest.mark.parametrize('mode', ['tuned', 'portable'])
@pytest.mark.parametrize('k', [3, 5])
def test_depthwise_conv_matches_torch_grouped_conv_and_its_gradients(mode, k):
  rng = np.random.default_rng(k)
  x = rng.normal(size=(2, 9, 7, 6)).astype(np.float32)
  kernel = rng.normal(size=(k, k, 1, 6)).astype(np.float32)
  xt = torch.tensor(x.transpose(0, 3, 1, 2), requires_grad=True)
  kt = torch.tensor(kernel.transpose(3, 2, 0, 1), requires_grad=True)
  yt = F.conv2d(xt, kt, padding=k // 2, groups=6)
  (yt ** 2).sum().backward()

  with kernels.use(mode):
    y = jax.jit(lambda x, k: kernels.depthwise_conv(x, k))(x, kernel)
    gk, gx = jax.jit(jax.grad(lambda k_, x_: (kernels.depthwise_conv(x_, k_) ** 2).sum(),
                              argnums=(0, 1)))(kernel, x)
  np.testing.assert_allclose(np.asarray(y), yt.detach().numpy().transpose(0, 2, 3, 1),
                             atol=1e-5, rtol=0)
  np.testing.assert_allclose(np.asarray(gx), xt.grad.numpy().transpose(0, 2, 3, 1),
                             atol=1e-4, rtol=1e-5)
  np.testing.assert_allclose(np.asarray(gk), kt.grad.numpy().transpose(2, 3, 1, 0),
                             atol=1e-3, rtol=1e-5)


def test_depthwise_conv_rejects_even_or_mismatched_kernels():
  x = jnp.zeros((1, 4, 4, 3))
  with pytest.raises(ValueError, match=r'odd k×k kernel \[k, k, 1, 3\], got \(2, 2, 1, 3\)'):
    kernels.depthwise_conv(x, jnp.zeros((2, 2, 1, 3)))
  with pytest.raises(ValueError, match='got \\(3, 3, 1, 4\\)'):
    kernels.depthwise_conv(x, jnp.zeros((3, 3, 1, 4)))


def _nchw(x):
  return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))


@pytest.mark.parametrize('mode', ['tuned', 'portable'])
def test_resize_bilinear_matches_torch_interpolate(mode):
  # Integer factors (the tuned path: ×4, ×2, ×8/×3, ×1/×5) and others (always portable).
  cases = [((3, 4), (12, 16)), ((2, 2), (4, 4)), ((2, 5), (16, 15)), ((4, 3), (4, 15)),
           ((5, 3), (16, 12)), ((7, 7), (16, 9))]
  rng = np.random.RandomState(0)
  xs = [rng.randn(2, *src, 3).astype(np.float32) for src, _ in cases]
  with kernels.use(mode):
    got = jax.jit(lambda xs: [kernels.resize_bilinear(x, dst)
                              for x, (_, dst) in zip(xs, cases)])(xs)
  for x, g, (_, dst) in zip(xs, got, cases):
    ref = F.interpolate(_nchw(x), size=dst, mode='bilinear',
                        align_corners=False).numpy().transpose(0, 2, 3, 1)
    np.testing.assert_allclose(np.asarray(g), ref, atol=1e-6, rtol=0)


@pytest.mark.parametrize('mode', ['tuned', 'portable'])
def test_integer_upsampling_gradient_matches_torch(mode):
  x = np.random.RandomState(1).randn(2, 5, 3, 4).astype(np.float32)
  w = np.random.RandomState(2).randn(2, 20, 12, 4).astype(np.float32)
  with kernels.use(mode):
    gx = jax.jit(jax.grad(lambda x: jnp.sum(kernels.resize_bilinear(x, (20, 12)) * w)))(x)
  xt = _nchw(x).requires_grad_(True)
  up = F.interpolate(xt, size=(20, 12), mode='bilinear', align_corners=False)
  (up * _nchw(w)).sum().backward()
  np.testing.assert_allclose(np.asarray(gx), xt.grad.numpy().transpose(0, 2, 3, 1), atol=1e-5)


@pytest.mark.parametrize('mode', ['tuned', 'portable'])
def test_gelu_matches_torch_erf_gelu_and_its_derivative(mode):
  x = np.linspace(-6, 6, 301).astype(np.float32)
  xt = torch.tensor(x, requires_grad=True)
  yt = F.gelu(xt)
  yt.sum().backward()
  with kernels.use(mode):
    y = jax.jit(lambda x: kernels.gelu(x))(x)
    g = jax.jit(jax.grad(lambda x: kernels.gelu(x).sum()))(x)
  np.testing.assert_allclose(np.asarray(y), yt.detach().numpy(), atol=1e-6)
  np.testing.assert_allclose(np.asarray(g), xt.grad.numpy(), atol=1e-6)


def test_float64_attention_stays_float64_in_every_mode(x64):
  del x64
  q = jnp.asarray(np.random.default_rng(0).normal(size=(1, 4, 2, 8)), jnp.float64)
  for mode in kernels.MODES:
    with kernels.use(mode):
      out = jax.jit(lambda q: kernels.dot_product_attention(q, q, q))(q)
    assert out.dtype == jnp.float64
