"""Baselines: linear classifier, MLP, ConvNet — counts, inits, activations, BN, dropout, training.

Oracles: closed-form parameter counts, numpy/scipy formulas of the
activations, and learning on scikit-learn's digits.
"""
from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import scipy.special
from sklearn import datasets

import vision
from vision import baselines

# Registered defaults: 8×8×1 digits, 10 classes.
EXPECTED_PARAMS = {
    'linear_classifier': 64 * 10 + 10,                                   # 650
    'mlp': (64 * 128 + 128) + (128 * 128 + 128) + (128 * 10 + 10),      # 26,122
    'convnet': ((9 * 1 * 16 + 16) + (9 * 16 * 16 + 16) + (9 * 16 * 32 + 32)
                + (9 * 32 * 32 + 32) + (2 * 2 * 32 * 128 + 128) + (128 * 10 + 10)),  # 34,170
}


def _randn(seed: int, shape: tuple[int, ...]) -> jnp.ndarray:
  """Standard normal test inputs from numpy (no per-shape PRNG compilation)."""
  return jnp.asarray(np.random.default_rng(seed).standard_normal(shape, dtype=np.float32))


def _jit(module):
  return jax.jit(module.apply, static_argnames=('train',), static_argnums=())


def _init(module, shape=(2, 8, 8, 1)):
  return jax.jit(module.init)(jax.random.PRNGKey(0), jnp.zeros(shape))


@pytest.mark.parametrize('name', sorted(EXPECTED_PARAMS))
def test_param_count(name):
  module = vision.create_model(name)
  shapes = jax.eval_shape(module.init, jax.random.PRNGKey(0), jnp.zeros((1, 8, 8, 1)))
  assert vision.param_count(shapes) == EXPECTED_PARAMS[name]
  assert EXPECTED_PARAMS == {'linear_classifier': 650, 'mlp': 26_122, 'convnet': 34_170}


def test_linear_classifier_is_wx_plus_b():
  module = vision.create_model('linear_classifier', img_size=4, in_chans=3, num_classes=5)
  x = _randn(1, (3, 4, 4, 3))
  variables = _init(module, x.shape)
  w, b = variables['params']['head']['kernel'], variables['params']['head']['bias']
  np.testing.assert_allclose(_jit(module)(variables, x), x.reshape(3, -1) @ w + b, atol=1e-5)


@pytest.mark.parametrize('init,std', [('small', lambda d: 0.01), ('xavier', lambda d: d ** -0.5),
                                      ('he', lambda d: (2 / d) ** 0.5)])
def test_weight_init_standard_deviation(init, std):
  d_in, d_out = 784, 400
  w = baselines.kernel_init(init)(jax.random.PRNGKey(0), (d_in, d_out))
  assert abs(float(w.mean())) < 3 * std(d_in) / np.sqrt(w.size)
  np.testing.assert_allclose(float(w.std()), std(d_in), rtol=0.01)
  # untruncated Gaussian: about 4.6% of the draws beyond 2σ
  assert 0.04 < float(jnp.mean(jnp.abs(w) > 2 * std(d_in))) < 0.052


def test_conv_he_init_uses_fan_in_f2c():
  module = vision.create_model('convnet', channels=(64,), convs_per_block=1, kernel_size=5,
                               padding=2, in_chans=16, img_size=8)
  variables = _init(module, (1, 8, 8, 16))
  kernel = variables['params']['conv0_0']['kernel']
  np.testing.assert_allclose(float(kernel.std()), (2 / (25 * 16)) ** 0.5, rtol=0.03)
  assert vision.param_count({'params': {'c': variables['params']['conv0_0']}}) == 25 * 16 * 64 + 64


_REFERENCE = {
    'sigmoid': scipy.special.expit,
    'tanh': np.tanh,
    'relu': lambda x: np.maximum(x, 0),
    'leaky_relu': lambda x: np.where(x > 0, x, 0.01 * x),
    'prelu': lambda x: np.where(x > 0, x, 0.25 * x),  # learned slope, initialised at 0.25
    'elu': lambda x: np.where(x > 0, x, np.expm1(x)),
    'gelu': lambda x: x * 0.5 * (1 + scipy.special.erf(x / np.sqrt(2))),
}


@pytest.mark.parametrize('kind', sorted(_REFERENCE))
def test_activation_formulas(kind):
  x = np.linspace(-4, 4, 33, dtype=np.float32)
  act = baselines.Activation(kind)
  variables = act.init(jax.random.PRNGKey(0), x)
  np.testing.assert_allclose(jax.jit(act.apply)(variables, x), _REFERENCE[kind](x.astype(np.float64)),
                             atol=1e-6)


def test_maxout_takes_the_max_over_pieces():
  x = np.arange(12, dtype=np.float32).reshape(2, 6) * np.array([1, -1, 1, -1, 1, -1])
  y = baselines.Activation('maxout', pieces=3).apply({}, jnp.asarray(x))
  np.testing.assert_array_equal(y, x.reshape(2, 3, 2).max(axis=1))


def test_maxout_mlp_has_k_times_the_hidden_weights():
  module = vision.create_model('mlp', activation='maxout', maxout_pieces=3, depth=1, width=20)
  shapes = jax.eval_shape(module.init, jax.random.PRNGKey(0), jnp.zeros((1, 8, 8, 1)))
  assert vision.param_count(shapes) == (64 * 60 + 60) + (20 * 10 + 10)


def test_prelu_slope_is_learned():
  module = vision.create_model('mlp', activation='prelu', depth=1, width=16)
  x = _randn(1, (8, 8, 8, 1))
  variables = _init(module, x.shape)
  assert variables['params']['act0']['prelu']['negative_slope'] == pytest.approx(0.25)
  grad = jax.grad(lambda v: _jit(module)(v, x).sum())(variables)
  assert float(jnp.abs(grad['params']['act0']['prelu']['negative_slope'])) > 0


def test_batchnorm_train_updates_statistics_and_eval_uses_them():
  module = vision.create_model('mlp', batchnorm=True, depth=1, width=16)
  x = 3.0 + 2.0 * _randn(1, (64, 8, 8, 1))
  variables = _init(module, x.shape)
  y_train, updates = jax.jit(functools.partial(module.apply, train=True, mutable=['batch_stats']))(
      variables, x)
  mean = updates['batch_stats']['bn0']['mean']
  h = x.reshape(64, -1) @ variables['params']['fc0']['kernel'] + variables['params']['fc0']['bias']
  np.testing.assert_allclose(mean, 0.1 * h.mean(0), atol=1e-5)  # momentum 0.9 from zero
  y_eval = _jit(module)({**variables, **updates}, x, train=False)
  assert not np.allclose(y_train, y_eval)


def test_dropout_train_vs_eval():
  module = vision.create_model('mlp', drop_rate=0.5)
  x = _randn(1, (4, 8, 8, 1))
  variables = _init(module, x.shape)
  fwd = _jit(module)
  np.testing.assert_array_equal(fwd(variables, x), fwd(variables, x))
  a = fwd(variables, x, train=True, rngs={'dropout': jax.random.PRNGKey(0)})
  b = fwd(variables, x, train=True, rngs={'dropout': jax.random.PRNGKey(1)})
  assert not np.allclose(a, b) and not np.allclose(a, fwd(variables, x))


def test_inverted_dropout_keeps_the_expectation():
  x = jnp.ones((20000,))
  y = nn.Dropout(0.3).apply({}, x, deterministic=False, rngs={'dropout': jax.random.PRNGKey(0)})
  assert abs(float(y.mean()) - 1.0) < 0.02
  values = np.unique(np.asarray(y))
  assert values[0] == 0 and len(values) == 2
  np.testing.assert_allclose(values[1], 1 / 0.7, rtol=1e-6)


@pytest.mark.parametrize('pool', ['max', 'avg'])
def test_convnet_pooling_and_shapes(pool):
  module = vision.create_model('convnet', pool=pool, img_size=16, channels=(4, 8, 8),
                               convs_per_block=1, fc_widths=(32, 16), batchnorm=True,
                               drop_rate=0.1)
  assert module.feature_sizes() == [(8, 8), (4, 4), (2, 2)]
  x = _randn(1, (2, 16, 16, 1))
  variables = _init(module, x.shape)
  assert variables['params']['fc0']['kernel'].shape == (2 * 2 * 8, 32)
  y, _ = jax.jit(functools.partial(module.apply, train=True, mutable=['batch_stats']))(
      variables, x, rngs={'dropout': jax.random.PRNGKey(0)})
  assert y.shape == (2, 10) and np.isfinite(np.asarray(y)).all()


def test_avg_and_max_pool_differ_as_defined():
  x = jnp.arange(16.0).reshape(1, 4, 4, 1)
  np.testing.assert_array_equal(nn.max_pool(x, (2, 2), (2, 2))[0, ..., 0], [[5, 7], [13, 15]])
  np.testing.assert_array_equal(nn.avg_pool(x, (2, 2), (2, 2))[0, ..., 0], [[2.5, 4.5], [10.5, 12.5]])


@pytest.mark.parametrize('name,overrides,match', [
    ('convnet', dict(img_size=7), r'does not tile an input of size 7.*3\.5'),
    ('convnet', dict(kernel_size=3, stride=3, padding=0, img_size=7, channels=(4,)), r'7 − 3 \+ 2·0\)/3'),
    ('convnet', dict(pool='median'), "pool='median' is unknown; valid: max, avg"),
    ('mlp', dict(activation='swish'), "activation='swish' is unknown"),
    ('mlp', dict(weight_init='glorot'), "weight_init='glorot' is unknown; valid: small, xavier, he"),
    ('mlp', dict(drop_path_rate=0.1), 'no residual'),
    ('mlp', dict(maxout_pieces=1, activation='maxout'), 'maxout_pieces must be an int >= 2'),
    ('linear_classifier', dict(drop_rate=1.0), r'drop_rate must be in \[0, 1\)'),
])
def test_impossible_hyperparameters_raise(name, overrides, match):
  with pytest.raises(ValueError, match=match):
    vision.create_model(name, **overrides)


@pytest.mark.parametrize('name', sorted(EXPECTED_PARAMS))
def test_misfit_images_raise_before_compiling(name):
  module = vision.create_model(name)
  variables = jax.eval_shape(module.init, jax.random.PRNGKey(0), jnp.zeros((1, 8, 8, 1)))
  with pytest.raises(ValueError, match=r'expects images of shape \[batch, 8, 8, 1\].*\(2, 16, 16, 1\)'):
    jax.eval_shape(module.apply, variables, jnp.zeros((2, 16, 16, 1)))


@pytest.fixture(scope='module')
def digits():
  data = datasets.load_digits()
  x = (data.images.astype(np.float32) / 16.0)[..., None]
  return jnp.asarray(x[:1000]), jnp.asarray(data.target[:1000]), jnp.asarray(x[1000:]), \
      jnp.asarray(data.target[1000:])


@pytest.mark.parametrize('name,overrides,n_train,steps,lr,target', [
    ('linear_classifier', dict(weight_init='small'), 1000, 150, 0.5, 0.90),
    ('mlp', dict(activation='tanh', weight_init='xavier', batchnorm=True, drop_rate=0.1),
     1000, 150, 0.1, 0.93),
    ('convnet', dict(channels=(8, 16), convs_per_block=1, fc_widths=(32,)), 400, 100, 0.05, 0.88),
])
def test_learns_digits(digits, name, overrides, n_train, steps, lr, target):
  """Full-batch SGD with momentum on the first digits; accuracy on the last 797."""
  x, y, x_test, y_test = digits
  x, y = x[:n_train], y[:n_train]
  module = vision.create_model(name, **overrides)
  variables = _init(module, x[:2].shape)
  params, state = variables['params'], {k: v for k, v in variables.items() if k != 'params'}
  opt = optax.sgd(lr, momentum=0.9)

  @jax.jit
  def train(params, state):
    def step(carry, key):
      params, state, opt_state = carry

      def loss_fn(p):
        logits, new_state = module.apply({'params': p, **state}, x, train=True,
                                         rngs={'dropout': key}, mutable=list(state))
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean(), new_state

      (loss, state), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
      updates, opt_state = opt.update(grads, opt_state)
      return (optax.apply_updates(params, updates), state, opt_state), loss

    keys = jax.random.split(jax.random.PRNGKey(0), steps)
    (params, state, _), losses = jax.lax.scan(step, (params, state, opt.init(params)), keys)
    logits = module.apply({'params': params, **state}, x_test, train=False)
    return losses, jnp.mean(logits.argmax(-1) == y_test)

  losses, accuracy = train(params, state)
  assert float(losses[-1]) < 0.5 * float(losses[0])
  assert float(accuracy) > target
