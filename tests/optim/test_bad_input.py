"""Bad hyper-parameters and names fail early with a ValueError that names the
argument, the value and what is valid."""
from __future__ import annotations

import re

import pytest

import optim

INF, NAN = float('inf'), float('nan')

BAD = [
    ('sgd', dict(learning_rate=-0.1), 'learning_rate', '-0.1'),
    ('sgd', dict(learning_rate=NAN), 'learning_rate', 'nan'),
    ('adam', dict(learning_rate=INF), 'learning_rate', 'inf'),
    ('adam', dict(learning_rate='fast'), 'learning_rate', 'fast'),
    ('adam', dict(learning_rate=1e-3, b1=1.0), 'b1', r'\[0, 1\)'),
    ('adam', dict(learning_rate=1e-3, b2=-0.1), 'b2', '-0.1'),
    ('adamw', dict(learning_rate=1e-3, b2=1.5), 'b2', '1.5'),
    ('adamax', dict(learning_rate=1e-3, b1=NAN), 'b1', 'nan'),
    ('nadam', dict(learning_rate=1e-3, b2=1.0), 'b2', r'\[0, 1\)'),
    ('amsgrad', dict(learning_rate=1e-3, amsgrad_max='biggest'), 'amsgrad_max', 'biggest'),
    ('adam', dict(learning_rate=1e-3, eps=-1e-8), 'eps', '-1e-08'),
    ('adagrad', dict(learning_rate=0.1, initial_accumulator_value=-1.0),
     'initial_accumulator_value', '-1.0'),
    ('rmsprop', dict(learning_rate=0.1, decay=1.0), 'decay', r'\[0, 1\)'),
    ('rmsprop', dict(learning_rate=0.1, momentum=-0.9), 'momentum', '-0.9'),
    ('sgd', dict(learning_rate=0.1, momentum=-0.5), 'momentum', '-0.5'),
    ('sgd', dict(learning_rate=0.1, nesterov=True), 'momentum', '0.0'),
    ('sgd', dict(learning_rate=0.1, weight_decay=-1e-4), 'weight_decay', '-0.0001'),
    ('adamw', dict(learning_rate=0.1, weight_decay=INF), 'weight_decay', 'inf'),
    ('adadelta', dict(rho=1.1), 'rho', r'\[0, 1\]'),
    ('nadam', dict(learning_rate=0.1, momentum_decay=-1.0), 'momentum_decay', '-1.0'),
    ('adamw', dict(learning_rate=0.1, mask='biases'), 'mask', 'biases'),
]


@pytest.mark.parametrize('name, hparams, arg, value', BAD,
                         ids=[f'{b[0]}-{b[2]}-{i}' for i, b in enumerate(BAD)])
def test_bad_hyperparameter(name, hparams, arg, value):
  with pytest.raises(ValueError) as info:
    optim.create(name, **hparams)
  msg = str(info.value)
  assert arg in msg and re.search(value, msg), msg
  # The direct factory raises the same.
  if hasattr(optim, name) and name not in ('momentum', 'nesterov'):
    with pytest.raises(ValueError):
      getattr(optim, name)(**hparams)


def test_unknown_optimizer_name_lists_valid():
  with pytest.raises(ValueError) as info:
    optim.create('adamm', learning_rate=1e-3)
  msg = str(info.value)
  assert "'adamm'" in msg and 'name' in msg
  for valid in ('sgd', 'adam', 'adamw', 'rmsprop', 'nadam'):
    assert f"'{valid}'" in msg


def test_unknown_hyperparameter_lists_valid():
  with pytest.raises(ValueError) as info:
    optim.create('adam', learning_rate=1e-3, beta1=0.9)
  msg = str(info.value)
  assert 'beta1' in msg and "'b1'" in msg and "'amsgrad'" in msg


def test_missing_learning_rate():
  with pytest.raises(ValueError, match='learning_rate'):
    optim.create('adam')


def test_schedules_and_zero_rate_accepted():
  optim.create('sgd', learning_rate=0.0)
  optim.create('adam', learning_rate=optim.schedules.cosine_decay(1e-3, 100))
  assert optim.create('adadelta') is not None  # lr defaults to 1.0


def test_weight_decay_needs_params():
  import jax.numpy as jnp
  opt = optim.sgd(0.1, weight_decay=0.1)
  x = jnp.ones(3)
  with pytest.raises(ValueError, match='params'):
    opt.update(x, opt.init(x))


def test_clip_rejects_bad_norm():
  for bad in (0.0, -1.0, NAN):
    with pytest.raises(ValueError, match='max_norm'):
      optim.clip_by_global_norm(bad)
