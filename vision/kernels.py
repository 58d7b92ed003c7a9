"""Platform-tuned kernels: the one seam between the models' math and the hardware.

The models in `vision` are written once in portable JAX/Flax and call the
functions here for the few operations whose best spelling depends on the
backend. Each kernel has two implementations of the same math:

* portable — the plain JAX spelling (`lax.conv_general_dilated`, a strided
  convolution, `jax.nn.dot_product_attention`, `jax.image.resize`, …), which
  XLA maps to cuDNN/cuBLAS on GPU and to the MXU on TPU;
* tuned — a spelling that XLA:CPU runs markedly faster (a grouped convolution
  as k² shifted multiply-adds, a strided convolution as one matmul, …).

Which one runs is decided here and nowhere else, by the mode:

* 'auto' (default) — tuned when lowering for CPU, portable on every other
  platform (chosen per lowering with `lax.platform_dependent`);
* 'portable' — the portable spelling everywhere (what GPU/TPU run; the CPU
  tests use it to exercise that code path);
* 'tuned' — the tuned spelling everywhere.

The mode comes from `use(mode)` (a context manager, per thread/task through a
`contextvars.ContextVar`), else the `VISOPT_KERNELS` environment variable,
else 'auto'. It is read when a function is traced, and jax caches traces by
function and argument shapes, not by mode: set the mode before the first
trace, or trace a fresh function (`jax.jit(lambda v, x: model.apply(v, x))`)
inside `use(...)`.
"""
from __future__ import annotations

import contextlib
import contextvars
import functools
import os
from typing import Any, Callable, Iterator, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

MODES = ('auto', 'portable', 'tuned')
ENV_VAR = 'VISOPT_KERNELS'

_MODE: contextvars.ContextVar[Optional[str]] = contextvars.ContextVar('visopt_kernels',
                                                                     default=None)


def _check_mode(value: str, source: str) -> str:
  if value not in MODES:
    raise ValueError(f'{source}={value!r} is not a kernel mode; valid: {", ".join(MODES)}.')
  return value


def mode() -> str:
  """The kernel mode in effect: `use(...)`, else $VISOPT_KERNELS, else 'auto'."""
  value = _MODE.get()
  if value is not None:
    return value
  env = os.environ.get(ENV_VAR, '').strip()
  return _check_mode(env, ENV_VAR) if env else 'auto'


@contextlib.contextmanager
def use(kernel_mode: str) -> Iterator[None]:
  """Traces inside the block use `kernel_mode` ('auto' | 'portable' | 'tuned')."""
  token = _MODE.set(_check_mode(kernel_mode, 'kernel mode'))
  try:
    yield
  finally:
    _MODE.reset(token)


def _select(tuned: Callable[..., Any], portable: Callable[..., Any], *args: Any) -> Any:
  """`tuned(*args)` or `portable(*args)` by the mode; 'auto' decides per lowering platform."""
  current = mode()
  if current == 'tuned':
    return tuned(*args)
  if current == 'portable':
    return portable(*args)
  return jax.lax.platform_dependent(*args, cpu=tuned, default=portable)


# GELU ------------------------------------------------------------------------

def gelu(x: jax.Array) -> jax.Array:
  """Exact GELU (Hendrycks & Gimpel 2016): x·Φ(x), Φ(x) = ½(1 + erf(x/√2)).

  Portable: `jax.nn.gelu(approximate=False)`, differentiated by autodiff.
  Tuned: the erf form torch and timm use, with the closed-form derivative
  dGELU/dx = Φ(x) + x·φ(x) (φ the normal density) as a custom JVP, so the
  backward pass is one fused elementwise op instead of erf's autodiff graph.
  """
  return _select(_gelu_closed_form, lambda x: jax.nn.gelu(x, approximate=False), x)


def _normal_cdf(x: jax.Array) -> jax.Array:
  return 0.5 * (1.0 + jax.lax.erf(x * np.sqrt(0.5).astype(x.dtype)))


@jax.custom_jvp
def _gelu_closed_form(x: jax.Array) -> jax.Array:
  return x * _normal_cdf(x)


@_gelu_closed_form.defjvp
def _gelu_jvp(primals, tangents):
  (x,), (dx,) = primals, tangents
  cdf = _normal_cdf(x)
  pdf = jnp.exp(-0.5 * x * x) * np.sqrt(0.5 / np.pi).astype(x.dtype)
  return x * cdf, (cdf + x * pdf) * dx


# Dense -----------------------------------------------------------------------

def dense(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """y = x·W over the last axis of x; x [..., C_in], W [C_in, C_out].

  Portable: one `dot_general` contracting the last axis (as `nn.Dense`).
  Tuned: x flattened to [∏ leading, C_in] first, because XLA:CPU runs the
  forward and especially the backward (dW = Xᵀ·dY) of a rank-2 dot markedly
  faster than the rank-3 contraction.
  """
  def flat(x, kernel):
    return (x.reshape(-1, x.shape[-1]) @ kernel).reshape(*x.shape[:-1], kernel.shape[-1])

  def contract(x, kernel):
    return jax.lax.dot_general(x, kernel, (((x.ndim - 1,), (0,)), ((), ())))

  return _select(flat, contract, x, kernel)


# Patch projection ------------------------------------------------------------

def patchify(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """Non-overlapping P×P patches projected to D: a stride-P, P×P 'VALID' convolution, NHWC.

      y[b, i, j, :] = Σ_{u, v < P, c} x[b, P·i + u, P·j + v, c] · K[u, v, c, :]

  with `kernel` K in `nn.Conv`'s HWIO layout [P, P, C, D]. Returns
  [B, ⌊H/P⌋, ⌊W/P⌋, D]; rows and columns past the last whole patch are
  ignored, as a 'VALID' convolution does. Portable: the strided
  `lax.conv_general_dilated`. Tuned: the image reshaped to
  [B·⌊H/P⌋·⌊W/P⌋, P·P·C] and multiplied by K as a [P·P·C, D] matrix, which
  XLA:CPU runs faster than a strided convolution.
  """
  p = kernel.shape[0]
  b, h, w, c = x.shape
  if kernel.shape[:3] != (p, p, c) or h < p or w < p:
    raise ValueError(f'patchify needs a [P, P, {c}, D] kernel with P ≤ the image size '
                     f'{h}×{w}, got kernel {tuple(kernel.shape)}')
  gh, gw = h // p, w // p

  def matmul(x, kernel):
    x = x[:, :gh * p, :gw * p].reshape(b, gh, p, gw, p, c).transpose(0, 1, 3, 2, 4, 5)
    y = x.reshape(-1, p * p * c) @ kernel.reshape(p * p * c, -1)
    return y.reshape(b, gh, gw, -1)

  def conv(x, kernel):
    return jax.lax.conv_general_dilated(x, kernel, (p, p), 'VALID',
                                        dimension_numbers=('NHWC', 'HWIO', 'NHWC'))

  return _select(matmul, conv, x, kernel)


# Depthwise convolution -------------------------------------------------------

def depthwise_conv(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """Depthwise k×k convolution, stride 1, zero 'same' padding p = k // 2 (odd k), NHWC.

      y[b, h, w, c] = Σ_{i, j < k} x_pad[b, h + i, w + j, c] · K[i, j, 0, c]

  with `kernel` K in `nn.Conv(feature_group_count=C)`'s layout [k, k, 1, C].
  Portable: the grouped `lax.conv_general_dilated` (cuDNN on GPU). Tuned:
  k² shifted multiply-adds, which XLA fuses into one elementwise pass (its
  gradients are elementwise too); XLA:CPU's grouped convolution is several
  times slower forward and backward.
  """
  k = kernel.shape[0]
  if kernel.shape[:3] != (k, k, 1) or k % 2 == 0 or kernel.shape[3] != x.shape[-1]:
    raise ValueError(f'depthwise_conv needs an odd k×k kernel [k, k, 1, {x.shape[-1]}], '
                     f'got {tuple(kernel.shape)}')
  p = k // 2

  def conv(x, kernel):
    return jax.lax.conv_general_dilated(x, kernel, (1, 1), ((p, p), (p, p)),
                                        dimension_numbers=('NHWC', 'HWIO', 'NHWC'),
                                        feature_group_count=x.shape[-1])

  def shift_and_add(x, kernel):
    h, w = x.shape[1:3]
    padded = jnp.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
    y = None
    for i in range(k):
      for j in range(k):
        tap = padded[:, i:i + h, j:j + w, :] * kernel[i, j, 0]
        y = tap if y is None else y + tap
    return y

  return _select(shift_and_add, conv, x, kernel)


# Attention -------------------------------------------------------------------

_CUDNN_DTYPES = (jnp.dtype(jnp.float16), jnp.dtype(jnp.bfloat16))


def attention_implementation(platform: str, dtype: Any, head_dim: int, q_len: int,
                             kv_len: int, bias_shape: Optional[Sequence[int]] = None,
                             batch: int = 1, heads: int = 1,
                             compute_capability: Optional[tuple[int, int]] = None) -> str:
  """'cudnn' or 'xla': the backend of portable attention for these operands.

  cuDNN's fused (flash) attention through
  `jax.nn.dot_product_attention(implementation='cudnn')` needs a CUDA GPU of
  compute capability ≥ 8.0, float16/bfloat16 operands, a head dimension that
  is a multiple of 8 and at most 128 (256 from compute capability 9.0), and,
  with a bias, even query and key lengths (its backward pass) and a bias of
  shape [1 | B, 1 | heads, T, S]. Anything else runs XLA's implementation.
  """
  if platform != 'cuda' or compute_capability is None or compute_capability < (8, 0):
    return 'xla'
  if jnp.dtype(dtype) not in _CUDNN_DTYPES:
    return 'xla'
  max_head_dim = 256 if compute_capability >= (9, 0) else 128
  if head_dim % 8 or head_dim > max_head_dim:
    return 'xla'
  if bias_shape is not None:
    if q_len % 2 or kv_len % 2 or len(bias_shape) != 4:
      return 'xla'
    if (bias_shape[0] not in (1, batch) or bias_shape[1] not in (1, heads)
        or tuple(bias_shape[2:]) != (q_len, kv_len)):
      return 'xla'
  return 'cudnn'


def _cuda_capability() -> Optional[tuple[int, int]]:
  """Compute capability of the default device when it is a CUDA GPU, else None."""
  if jax.default_backend() != 'gpu':
    return None
  device = jax.devices()[0]
  if 'cuda' not in getattr(device.client, 'platform_version', '').lower():
    return None
  major, minor = str(device.compute_capability).split('.')[:2]
  return int(major), int(minor)


def dot_product_attention(q: jax.Array, k: jax.Array, v: jax.Array,
                          bias: Optional[jax.Array] = None) -> jax.Array:
  """softmax(QKᵀ/√d + B)·V over [B, T, heads, d] tensors; `bias` broadcasts to [B, heads, T, S].

  Portable: `jax.nn.dot_product_attention`, with `implementation='cudnn'`
  (cuDNN's fused kernel) where `attention_implementation` allows it on the
  default device, else `implementation='xla'` (XLA's softmax(QKᵀ)V, softmax
  in float32). Tuned: the same math head-major — Q, K, V transposed once to
  [B, heads, T, d] so both batched matmuls see contiguous batch dimensions,
  which XLA:CPU runs faster than the generic path's per-einsum transposes.
  The tuned softmax runs in float32 or wider. float64 operands (the
  gradient checks) always take the head-major spelling, on every platform and
  in every mode, because `jax.nn.dot_product_attention` computes the softmax
  in float32.
  """
  if bias is not None:
    bias = bias.astype(q.dtype)
  if q.dtype == jnp.float64:
    return _head_major_attention(q, k, v, bias)

  def portable(q, k, v, bias):
    capability = _cuda_capability()
    impl = attention_implementation(
        'cuda' if capability else jax.default_backend(), q.dtype, q.shape[-1], q.shape[1],
        k.shape[1], None if bias is None else bias.shape, q.shape[0], q.shape[2], capability)
    return jax.nn.dot_product_attention(q, k, v, bias=bias, implementation=impl)

  return _select(_head_major_attention, portable, q, k, v, bias)


def _head_major_attention(q: jax.Array, k: jax.Array, v: jax.Array,
                          bias: Optional[jax.Array]) -> jax.Array:
  """Attention computed on [B, heads, T, d]; inputs and output [B, T, heads, d].

  Normalised after the second matmul: with S = QKᵀ/√d + B, m = max_k S (a
  constant to the gradient: softmax is shift invariant), E = exp(S − m) and
  ℓ = Σ_k E, the output is (E·V)/ℓ = softmax(S)·V. Autodiff of this form
  gives the backward FlashAttention uses, S̄ = E ⊙ ((Ō/ℓ)Vᵀ − Σ_d(Ō ⊙ O)/ℓ):
  its row sum runs over the head dimension d rather than over the T keys,
  and no T×T division is materialised in either pass.
  """
  q, k, v = (t.transpose(0, 2, 1, 3) for t in (q, k, v))
  scores = jnp.einsum('bhqd,bhkd->bhqk', q * np.asarray(q.shape[-1] ** -0.5, q.dtype), k)
  if bias is not None:
    if bias.ndim == 4 and bias.shape[0] == 1 < scores.shape[0]:
      bias = broadcast_leading(bias[0], scores.shape[0])
    scores = scores + bias
  softmax_dtype = jnp.promote_types(q.dtype, jnp.float32)
  scores = scores.astype(softmax_dtype)
  unnormalised = jnp.exp(scores - jax.lax.stop_gradient(jnp.max(scores, axis=-1, keepdims=True)))
  total = jnp.sum(unnormalised, axis=-1, keepdims=True)
  out = jnp.einsum('bhqk,bhkd->bhqd', unnormalised.astype(v.dtype), v,
                   preferred_element_type=softmax_dtype)
  return (out / total).astype(v.dtype).transpose(0, 2, 1, 3)


def broadcast_leading(x: jax.Array, n: int) -> jax.Array:
  """[*s] → [n, *s], every slice equal to x; the gradient sums the n slices.

  An additive bias shared by the batch (Swin's relative position bias, its
  shifted-window mask) is broadcast this way, and its gradient is the sum of
  the score gradients over the batch. Portable: `jnp.broadcast_to`, whose
  gradient is XLA's reduction over the leading axis. Tuned: that sum as the
  matrix–vector product 1ᵀ·G over G reshaped to [n, ∏s], because XLA:CPU
  reduces a short major axis over a large minor extent at a small fraction of
  memory bandwidth while a GEMV streams it.
  """
  n = int(n)
  if n < 1:
    raise ValueError(f'broadcast_leading needs n >= 1, got {n}')
  return _broadcast_leading(x, n)


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def _broadcast_leading(x: jax.Array, n: int) -> jax.Array:
  return jnp.broadcast_to(x[None], (n,) + x.shape)


def _broadcast_leading_fwd(x: jax.Array, n: int) -> tuple[jax.Array, None]:
  return _broadcast_leading(x, n), None


def _broadcast_leading_bwd(n: int, _, g: jax.Array) -> tuple[jax.Array]:
  def gemv(g):
    ones = jnp.ones((1, n), g.dtype)
    return jnp.matmul(ones, g.reshape(n, -1), precision=jax.lax.Precision.HIGHEST,
                      preferred_element_type=g.dtype).reshape(g.shape[1:])

  return (_select(gemv, lambda g: jnp.sum(g, axis=0), g),)


_broadcast_leading.defvjp(_broadcast_leading_fwd, _broadcast_leading_bwd)


# Bilinear resize -------------------------------------------------------------

def resize_bilinear(x: jax.Array, size: tuple[int, int]) -> jax.Array:
  """[B, h, w, C] → [B, H, W, C], torch `interpolate(bilinear, align_corners=False)`.

  Output pixel o samples the input at u = (o + ½)·n/N − ½ (clamped to the
  edges) and interpolates linearly between its two neighbours (half-pixel
  centres, no antialiasing). Portable: `jax.image.resize(..., 'bilinear',
  antialias=False)`. Tuned, for integer upsampling factors s = N/n: the
  weights are periodic — o = s·q + r reads x[q−1], x[q] with weights
  (−d, 1+d) if d = (r + ½)/s − ½ < 0, else x[q], x[q+1] with (1−d, d) — so
  the result is s two-tap blends of shifted copies interleaved, which XLA
  fuses into one elementwise pass forward and backward instead of
  `jax.image.resize`'s dense resampling matrices. Other sizes take the
  portable path in every mode.
  """
  size = (int(size[0]), int(size[1]))
  if tuple(x.shape[1:3]) == size:
    return x

  def portable(x):
    return jax.image.resize(x, (x.shape[0], size[0], size[1], x.shape[-1]), 'bilinear',
                            antialias=False)

  if not all(n_out % n_in == 0 for n_in, n_out in zip(x.shape[1:3], size)):
    return portable(x)

  def phases(x):
    for axis, (n_in, n_out) in enumerate(zip(x.shape[1:3], size), start=1):
      x = _upsample_axis(x, axis, n_out // n_in)
    return x

  return _select(phases, portable, x)


def upsample_phases(x: jax.Array, factors: tuple[int, int]) -> list[list[jax.Array]]:
  """The s_h·s_w phases of ×(s_h, s_w) bilinear upsampling of `[B, h, w, C]`.

  phases[r][t] = resize_bilinear(x, (s_h·h, s_w·w))[:, r::s_h, t::s_w], each
  `[B, h, w, C]`: the two-tap blends of shifted copies `resize_bilinear`
  interleaves (see there), not interleaved. A per-pixel function of the
  upsampled map summed over the image is its sum over the phases, so a loss
  on upsampled logits needs no `[B, s_h·h, s_w·w, C]` array, nor the
  interleaving copy and its transpose in the backward pass. The same math on
  every platform.
  """
  factors = (int(factors[0]), int(factors[1]))
  if min(factors) < 1:
    raise ValueError(f'upsampling factors must be positive ints, got {factors}')
  return [_axis_phases(row, 2, factors[1]) for row in _axis_phases(x, 1, factors[0])]


def _axis_phases(x: jax.Array, axis: int, s: int) -> list[jax.Array]:
  """[phase r of ×s bilinear upsampling (align_corners=False) along `axis`, r < s]."""
  if s == 1:
    return [x]
  n = x.shape[axis]
  take = lambda start, stop: jax.lax.slice_in_dim(x, start, stop, axis=axis)  # noqa: E731
  prev = jnp.concatenate([take(0, 1), take(0, n - 1)], axis=axis)   # x[max(q − 1, 0)]
  nxt = jnp.concatenate([take(1, n), take(n - 1, n)], axis=axis)    # x[min(q + 1, n − 1)]
  out = []
  for r in range(s):
    d = (r + 0.5) / s - 0.5
    out.append((-d) * prev + (1 + d) * x if d < 0 else (1 - d) * x + d * nxt)
  return out


def _upsample_axis(x: jax.Array, axis: int, s: int) -> jax.Array:
  """×s bilinear upsampling (align_corners=False) along `axis` (see `resize_bilinear`)."""
  if s == 1:
    return x
  out = jnp.stack(_axis_phases(x, axis, s), axis=axis + 1)
  return out.reshape(*x.shape[:axis], x.shape[axis] * s, *x.shape[axis + 1:])


# Initialisation --------------------------------------------------------------

def flat_init(init: Callable[..., jax.Array]) -> Callable[..., jax.Array]:
  """`init` for elementwise-i.i.d. initialisers (normal, truncated normal).

  Portable: `init(key, shape)`. Tuned: drawn as a flat vector of ∏shape
  entries and reshaped — the same distribution, different draws for the same
  key — because with jax's partitionable threefry XLA:CPU takes many times
  longer to compile random draws of 3-/4-D shapes than flat ones. Not for
  fan-based initialisers (lecun, he, xavier), whose scale depends on the shape.
  """
  def wrapped(key: jax.Array, shape: Sequence[int], dtype: Any = jnp.float32) -> jax.Array:
    shape = tuple(int(s) for s in shape)

    def flat(key):
      return init(key, (int(np.prod(shape)),), dtype).reshape(shape)

    return _select(flat, lambda key: init(key, shape, dtype), key)
  return wrapped
