"""The course's first models: a linear classifier, an MLP and a small ConvNet.

* `linear_classifier`: class scores s = Wx + b on the flattened image
  (x ∈ R^D, W ∈ R^{K×D}).
* `mlp`: `depth` hidden layers h ← f(W h + b) of `width` units, then a linear
  scorer. f is one of identity (no nonlinearity: the net is one affine map),
  sigmoid, tanh, ReLU, Leaky ReLU (max(ax, x), slope a = `leaky_slope`,
  0.01 by default; deck 001 uses 0.1), PReLU
  (learned slope, He et al. 2015), ELU (α = 1), exact GELU or Maxout
  (Goodfellow et al. 2013: h = max_j (W_j h + b_j) over `maxout_pieces`).
* `convnet`: [(CONV-ReLU)×N − POOL]×M − (FC-ReLU)×K − FC. A CONV layer has K
  filters of size F×F, stride S and zero padding P; on an N_in×N_in input it
  yields (N_in − F + 2P)/S + 1 outputs per side and F²·C·K + K parameters.
  POOL takes the max, mean or sum of each window; `pool_ceil=True` pools
  sizes the window does not tile with ⌈(N − F)/S⌉ + 1 outputs (e.g. ⌈W/2⌉
  for 2×2/2), the last window clipped at the border (torch's
  `ceil_mode=True`: max over and mean of the in-bounds values).

Weight initialisation (`weight_init`): 'small' draws N(0, 0.01²); 'xavier' draws
N(0, 1/D_in) (Glorot & Bengio 2010, in the course's fan-in form); 'he' draws
N(0, 2/D_in) (He et al. 2015). D_in is the fan-in (F²·C for a conv). Biases
start at zero. Optional BatchNorm (Ioffe & Szegedy 2015) goes between the
affine map and the nonlinearity; with `batchnorm=True`, `train=True` calls
need `mutable=['batch_stats']`. Dropout (Srivastava et al. 2014, inverted)
follows each hidden nonlinearity (for the linear classifier: the input).

Defaults fit scikit-learn's 8×8 grey digits with 10 classes.
"""
from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from vision import kernels
from vision import layers
from vision.spec import ModelDef

Dtype = Any

INITS = ('small', 'xavier', 'he')
ACTIVATIONS = ('identity', 'sigmoid', 'tanh', 'relu', 'leaky_relu', 'prelu', 'elu', 'gelu',
               'maxout')
POOLS = ('max', 'avg', 'sum')


def kernel_init(weight_init: str) -> Callable[..., jax.Array]:
  """The course's weight initialisations, as flax initialisers over fan-in.

  'small': σ = 0.01; 'xavier': σ = 1/√D_in; 'he': σ = √(2/D_in); all
  untruncated Gaussians with mean zero.
  """
  if weight_init == 'small':
    return nn.initializers.normal(stddev=0.01)
  if weight_init == 'xavier':
    return nn.initializers.variance_scaling(1.0, 'fan_in', 'normal')
  if weight_init == 'he':
    return nn.initializers.variance_scaling(2.0, 'fan_in', 'normal')
  raise ValueError(f'weight_init={weight_init!r} is unknown; valid: {", ".join(INITS)}.')


def conv_output_size(n: int, f: int, s: int, p: int) -> int:
  """Spatial outputs (N − F + 2P)/S + 1 of a conv or pool; ValueError if it does not tile."""
  span = n - f + 2 * p
  if span < 0 or span % s:
    raise ValueError(
        f'A {f}×{f} window with stride {s} and padding {p} does not tile an input '
        f'of size {n}: (N − F + 2P)/S + 1 = ({n} − {f} + 2·{p})/{s} + 1 = '
        f'{span / s + 1:g} is not a positive integer. Change the kernel size, '
        f'stride, padding or img_size.')
  return span // s + 1


def pool_output_size(n: int, f: int, s: int, ceil: bool) -> int:
  """Pool outputs per side: (N − F)/S + 1 (must tile), or with `ceil`
  ⌈(N − F)/S⌉ + 1 less a last window that would start past the input."""
  if not ceil:
    return conv_output_size(n, f, s, 0)
  if n < f:
    raise ValueError(f'A {f}×{f} pooling window does not fit an input of size {n}.')
  out = -(-(n - f) // s) + 1
  return out - 1 if (out - 1) * s >= n else out


def pool2d(x: jax.Array, kind: str, size: int, stride: int, ceil: bool = False) -> jax.Array:
  """Max, mean or sum over size×size windows of NHWC `x` (see `pool_output_size`).

  With `ceil` the input is padded at the bottom/right to cover the last
  window: with −∞ for max, zeros for sum, and the mean divides by the
  number of in-bounds values."""
  h, w = x.shape[1:3]
  oh, ow = (pool_output_size(n, size, stride, ceil) for n in (h, w))
  need_h, need_w = (oh - 1) * stride + size, (ow - 1) * stride + size  # rows/cols pooled
  x = x[:, :need_h, :need_w]  # a stride larger than the window skips the remainder
  h, w = x.shape[1:3]
  pad = ((0, 0), (0, need_h - h), (0, need_w - w), (0, 0))
  window, strides = (size, size), (stride, stride)
  if kind == 'max':
    return nn.max_pool(jnp.pad(x, pad, constant_values=-jnp.inf), window, strides)
  total = nn.pool(jnp.pad(x, pad), 0.0, jax.lax.add, window, strides, 'VALID')
  if kind == 'sum':
    return total
  ones = jnp.pad(jnp.ones((1, h, w, 1), x.dtype), pad)
  return total / nn.pool(ones, 0.0, jax.lax.add, window, strides, 'VALID')


def _check_common(model: Any) -> None:
  """Validation shared by the baselines (fields every registered model has)."""
  layers.to_2tuple(model.img_size)
  for field in ('num_classes', 'in_chans'):
    value = getattr(model, field)
    if not isinstance(value, int) or value < 1:
      raise ValueError(f'{field} must be a positive int, got {value!r}.')
  if not 0.0 <= model.drop_rate < 1.0:
    raise ValueError(f'drop_rate must be in [0, 1), got {model.drop_rate!r}.')
  if model.drop_path_rate != 0.0:
    raise ValueError(
        f'drop_path_rate={model.drop_path_rate!r}: the baselines have no residual '
        'branches to drop; use 0.0 (or drop_rate for dropout).')
  if model.weight_init not in INITS:
    raise ValueError(f'weight_init={model.weight_init!r} is unknown; valid: {", ".join(INITS)}.')


def _batchnorm(train: bool, dtype: Dtype, name: str, axis_name: Optional[str] = None
               ) -> nn.BatchNorm:
  """BatchNorm; with `axis_name` the batch statistics are over every device (SyncBN)."""
  return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5,
                      dtype=dtype, axis_name=axis_name, name=name)


class LinearClassifier(nn.Module):
  """Scores s = Wx + b of the flattened image x (a softmax/SVM linear classifier)."""
  num_classes: int = 10
  img_size: Any = 8
  in_chans: int = 1
  drop_rate: float = 0.0
  drop_path_rate: float = 0.0
  dtype: Dtype = jnp.float32
  weight_init: str = 'small'

  def validate(self) -> None:
    _check_common(self)

  @nn.compact
  def __call__(self, images: jax.Array, train: bool = False) -> jax.Array:
    layers.check_image_shape(images, self.img_size, self.in_chans, 'linear_classifier')
    x = images.reshape(images.shape[0], -1).astype(self.dtype)
    x = nn.Dropout(self.drop_rate)(x, deterministic=not train)
    x = nn.Dense(self.num_classes, dtype=self.dtype, kernel_init=kernel_init(self.weight_init),
                 name='head')(x)
    return layers.float_logits(x)


class Activation(nn.Module):
  """One of the course's nonlinearities; Maxout takes the max over its pieces.

  For 'maxout' the input's last axis holds `pieces` groups of equal width and
  the output is the elementwise max across them.
  """
  kind: str
  pieces: int = 2
  negative_slope: float = 0.01  # Leaky ReLU's a

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    if self.kind == 'identity':
      return x
    if self.kind == 'sigmoid':
      return nn.sigmoid(x)
    if self.kind == 'tanh':
      return jnp.tanh(x)
    if self.kind == 'relu':
      return nn.relu(x)
    if self.kind == 'leaky_relu':
      return nn.leaky_relu(x, negative_slope=self.negative_slope)
    if self.kind == 'prelu':
      return nn.PReLU(negative_slope_init=0.25, name='prelu')(x)
    if self.kind == 'elu':
      return nn.elu(x, alpha=1.0)
    if self.kind == 'gelu':
      return kernels.gelu(x)
    if self.kind == 'maxout':
      return x.reshape(*x.shape[:-1], self.pieces, -1).max(axis=-2)
    raise ValueError(f'activation={self.kind!r} is unknown; valid: {", ".join(ACTIVATIONS)}.')


class MLP(nn.Module):
  """Fully connected net: `depth` × (Dense → [BatchNorm] → f → Dropout) → Dense."""
  num_classes: int = 10
  img_size: Any = 8
  in_chans: int = 1
  drop_rate: float = 0.0
  drop_path_rate: float = 0.0
  dtype: Dtype = jnp.float32
  weight_init: str = 'he'
  depth: int = 2
  width: int = 128
  activation: str = 'relu'
  maxout_pieces: int = 2
  batchnorm: bool = False
  bn_axis_name: Optional[str] = None  # pmap axis for cross-device BatchNorm statistics
  leaky_slope: float = 0.01  # the slope a of 'leaky_relu' for x < 0

  def validate(self) -> None:
    _check_common(self)
    if not isinstance(self.depth, int) or self.depth < 0:
      raise ValueError(f'depth must be an int >= 0 (hidden layers), got {self.depth!r}.')
    if not isinstance(self.width, int) or self.width < 1:
      raise ValueError(f'width must be a positive int, got {self.width!r}.')
    if self.activation not in ACTIVATIONS:
      raise ValueError(
          f'activation={self.activation!r} is unknown; valid: {", ".join(ACTIVATIONS)}.')
    if self.activation == 'maxout' and (not isinstance(self.maxout_pieces, int)
                                        or self.maxout_pieces < 2):
      raise ValueError(f'maxout_pieces must be an int >= 2, got {self.maxout_pieces!r}.')

  @nn.compact
  def __call__(self, images: jax.Array, train: bool = False) -> jax.Array:
    layers.check_image_shape(images, self.img_size, self.in_chans, 'mlp')
    x = images.reshape(images.shape[0], -1).astype(self.dtype)
    pieces = self.maxout_pieces if self.activation == 'maxout' else 1
    for i in range(self.depth):
      x = nn.Dense(self.width * pieces, dtype=self.dtype, kernel_init=kernel_init(self.weight_init),
                   name=f'fc{i}')(x)
      if self.batchnorm:
        x = _batchnorm(train, self.dtype, f'bn{i}', self.bn_axis_name)(x)
      x = Activation(self.activation, pieces, self.leaky_slope, name=f'act{i}')(x)
      x = nn.Dropout(self.drop_rate)(x, deterministic=not train)
    x = nn.Dense(self.num_classes, dtype=self.dtype, kernel_init=kernel_init(self.weight_init),
                 name='head')(x)
    return layers.float_logits(x)


class ConvNet(nn.Module):
  """[(CONV-ReLU)×N − POOL]×M − (FC-ReLU)×K − FC.

  Attributes:
    channels: filters K of the convs in each of the M blocks (its length is M).
    convs_per_block: N.
    kernel_size, stride, padding: the conv's F, S, P.
    pool: 'max', 'avg' or 'sum'; pool_size/pool_stride: its window and stride.
    pool_ceil: ⌈(N − F)/S⌉ + 1 pooled outputs for sizes the window does not
      tile (torch's ceil_mode), instead of an error.
    fc_widths: widths of the K hidden fully connected layers.
  """
  num_classes: int = 10
  img_size: Any = 8
  in_chans: int = 1
  drop_rate: float = 0.0
  drop_path_rate: float = 0.0
  dtype: Dtype = jnp.float32
  weight_init: str = 'he'
  channels: Sequence[int] = (16, 32)
  convs_per_block: int = 2
  kernel_size: int = 3
  stride: int = 1
  padding: int = 1
  pool: str = 'max'
  pool_size: int = 2
  pool_stride: int = 2
  fc_widths: Sequence[int] = (128,)
  batchnorm: bool = False
  bn_axis_name: Optional[str] = None  # pmap axis for cross-device BatchNorm statistics
  pool_ceil: bool = False

  def feature_sizes(self) -> list[tuple[int, int]]:
    """(H, W) after each block, by (N − F + 2P)/S + 1; ValueError if a layer does not tile."""
    h, w = layers.to_2tuple(self.img_size)
    sizes = []
    for _ in self.channels:
      for _ in range(self.convs_per_block):
        h = conv_output_size(h, self.kernel_size, self.stride, self.padding)
        w = conv_output_size(w, self.kernel_size, self.stride, self.padding)
      h = pool_output_size(h, self.pool_size, self.pool_stride, self.pool_ceil)
      w = pool_output_size(w, self.pool_size, self.pool_stride, self.pool_ceil)
      sizes.append((h, w))
    return sizes

  def validate(self) -> None:
    _check_common(self)
    if self.pool not in POOLS:
      raise ValueError(f'pool={self.pool!r} is unknown; valid: {", ".join(POOLS)}.')
    for field in ('convs_per_block', 'kernel_size', 'stride', 'pool_size', 'pool_stride'):
      value = getattr(self, field)
      if not isinstance(value, int) or value < 1:
        raise ValueError(f'{field} must be a positive int, got {value!r}.')
    if not isinstance(self.padding, int) or self.padding < 0:
      raise ValueError(f'padding must be an int >= 0, got {self.padding!r}.')
    if not self.channels or any(not isinstance(c, int) or c < 1 for c in self.channels):
      raise ValueError(f'channels must be a non-empty list of positive ints, got {self.channels!r}.')
    if any(not isinstance(c, int) or c < 1 for c in self.fc_widths):
      raise ValueError(f'fc_widths must be positive ints, got {self.fc_widths!r}.')
    self.feature_sizes()

  @nn.compact
  def __call__(self, images: jax.Array, train: bool = False) -> jax.Array:
    layers.check_image_shape(images, self.img_size, self.in_chans, 'convnet')
    self.feature_sizes()
    x = images.astype(self.dtype)
    pad = ((self.padding, self.padding),) * 2
    for m, width in enumerate(self.channels):
      for n in range(self.convs_per_block):
        x = nn.Conv(width, (self.kernel_size,) * 2, strides=self.stride, padding=pad,
                    dtype=self.dtype, kernel_init=kernel_init(self.weight_init),
                    name=f'conv{m}_{n}')(x)
        if self.batchnorm:
          x = _batchnorm(train, self.dtype, f'bn{m}_{n}', self.bn_axis_name)(x)
        x = nn.relu(x)
      x = pool2d(x, self.pool, self.pool_size, self.pool_stride, self.pool_ceil)
    x = x.reshape(x.shape[0], -1)
    for k, width in enumerate(self.fc_widths):
      x = nn.Dense(width, dtype=self.dtype, kernel_init=kernel_init(self.weight_init),
                   name=f'fc{k}')(x)
      if self.batchnorm:
        x = _batchnorm(train, self.dtype, f'fc_bn{k}', self.bn_axis_name)(x)
      x = nn.relu(x)
      x = nn.Dropout(self.drop_rate)(x, deterministic=not train)
    x = nn.Dense(self.num_classes, dtype=self.dtype, kernel_init=kernel_init(self.weight_init),
                 name='head')(x)
    return layers.float_logits(x)


MODELS = {
    'linear_classifier': ModelDef('baseline', LinearClassifier, {}),
    'mlp': ModelDef('baseline', MLP, {}),
    'convnet': ModelDef('baseline', ConvNet, {}),
}
