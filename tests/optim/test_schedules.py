"""Every schedule against its formula (float64 numpy) at sampled steps and
against the optax equivalent where one exists; jit-safe; no int32 overflow."""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from optim import schedules as S

STEPS = np.array([0, 1, 2, 5, 9, 10, 11, 29, 30, 31, 50, 59, 60, 61, 89, 90, 99, 100, 150])
T = 100.0

# name: (ours, formula t -> value in float64, optax peer or None)
CASES = {
    'constant': (S.constant(0.3), lambda t: 0.3 + 0 * t, optax.constant_schedule(0.3)),
    'step_decay': (S.step_decay(1.0, [30, 60, 90], 0.1),
                   lambda t: 0.1 ** ((t >= 30).astype(int) + (t >= 60) + (t >= 90)),
                   optax.piecewise_constant_schedule(1.0, {30: 0.1, 60: 0.1, 90: 0.1})),
    'exponential_decay': (S.exponential_decay(2.0, 0.01), lambda t: 2.0 * np.exp(-0.01 * t),
                          optax.exponential_decay(2.0, 1, math.exp(-0.01))),
    'inverse_time_decay': (S.inverse_time_decay(2.0, 0.1), lambda t: 2.0 / (1 + 0.1 * t), None),
    'cosine_decay': (S.cosine_decay(2.0, T, 0.2),
                     lambda t: 0.2 + 1.8 * 0.5 * (1 + np.cos(np.pi * np.minimum(t, T) / T)),
                     optax.cosine_decay_schedule(2.0, int(T), alpha=0.1)),
    'linear_decay': (S.linear_decay(2.0, T, 0.2),
                     lambda t: 2.0 + (0.2 - 2.0) * np.minimum(t, T) / T,
                     optax.linear_schedule(2.0, 0.2, int(T))),
    'poly_decay': (S.poly_decay(2.0, T, 2.0, 0.2),
                   lambda t: 0.2 + 1.8 * (1 - np.minimum(t, T) / T) ** 2,
                   optax.polynomial_schedule(2.0, 0.2, 2.0, int(T))),
    'inverse_sqrt_decay': (S.inverse_sqrt_decay(2.0),
                           lambda t: 2.0 / np.sqrt(np.maximum(t, 1)), None),
    'warmup': (S.warmup(S.cosine_decay(2.0, T - 10), 10),
               lambda t: np.where(t < 10, 2.0 * t / 10,
                                  1.0 * (1 + np.cos(np.pi * np.minimum(t - 10, 90) / 90))),
               optax.warmup_cosine_decay_schedule(0.0, 2.0, 10, int(T))),
    'warmup_from_init': (S.warmup(S.constant(1.0), 10, init_value=0.5),
                         lambda t: np.where(t < 10, 0.5 + 0.5 * t / 10, 1.0),
                         optax.join_schedules([optax.linear_schedule(0.5, 1.0, 10),
                                               optax.constant_schedule(1.0)], [10])),
    'scale_by_batch_size': (S.scale_by_batch_size(S.cosine_decay(0.1, T), 1024),
                            lambda t: 0.4 * 0.5 * (1 + np.cos(np.pi * np.minimum(t, T) / T)),
                            optax.cosine_decay_schedule(0.4, int(T))),
}

# create(name, init_value=2.0, total_steps=T, warmup_steps=W, **kw) against formulas.
W = 10.0
D = T - W
_ramp = lambda t, after: np.where(t < W, 2.0 * t / W, after(np.maximum(t - W, 0)))  # noqa: E731
CREATE_CASES = {
    'constant': (dict(), lambda t: _ramp(t, lambda s: 2.0 + 0 * s)),
    'step': (dict(), lambda t: _ramp(t, lambda s: 2.0 * 0.1 ** ((s >= D / 2).astype(int)
                                                               + (s >= 0.75 * D)))),
    'exponential': (dict(), lambda t: _ramp(t, lambda s: 2.0 * np.exp(-np.log(100) * s / D))),
    'inverse_time': (dict(rate=0.5), lambda t: _ramp(t, lambda s: 2.0 / (1 + 0.5 * s))),
    'cosine': (dict(end_value=0.1), lambda t: _ramp(
        t, lambda s: 0.1 + 1.9 * 0.5 * (1 + np.cos(np.pi * np.minimum(s, D) / D)))),
    'linear': (dict(), lambda t: _ramp(t, lambda s: 2.0 * (1 - np.minimum(s, D) / D))),
    'inverse_sqrt': (dict(), lambda t: _ramp(t, lambda s: 2.0 / np.sqrt(np.maximum(s, 1)))),
    'poly': (dict(power=0.9), lambda t: _ramp(
        t, lambda s: 2.0 * (1 - np.minimum(s, D) / D) ** 0.9)),
    'warmup_cosine': (dict(), lambda t: _ramp(
        t, lambda s: 2.0 * 0.5 * (1 + np.cos(np.pi * np.minimum(s, D) / D)))),
    'warmup_linear': (dict(end_value=0.2), lambda t: _ramp(
        t, lambda s: 2.0 + (0.2 - 2.0) * np.minimum(s, D) / D)),
}

# Read by tests/optim/test_coverage.py: schedule functions and create() names.
TESTED = frozenset(k for k in CASES if k != 'warmup_from_init')
TESTED_CREATE = frozenset(CREATE_CASES)


@pytest.mark.parametrize('name', list(CASES))
def test_schedule_formula_and_optax(name):
  ours, formula, peer = CASES[name]
  got = np.asarray(ours(jnp.asarray(STEPS, jnp.int32)))
  assert got.dtype == np.float32
  np.testing.assert_allclose(got, formula(STEPS.astype(np.float64)), rtol=2e-6, atol=1e-7)
  if peer is not None:
    np.testing.assert_allclose(got, np.asarray([peer(int(t)) for t in STEPS]),
                               rtol=2e-6, atol=1e-7)


@pytest.mark.parametrize('name', list(CREATE_CASES))
def test_create(name):
  kwargs, formula = CREATE_CASES[name]
  sched = S.create(name, 2.0, T, warmup_steps=W, **kwargs)
  np.testing.assert_allclose(np.asarray(sched(jnp.asarray(STEPS))),
                             formula(STEPS.astype(np.float64)), rtol=2e-6, atol=1e-7)


def test_create_without_warmup_starts_at_init():
  for name in ('constant', 'step', 'exponential', 'inverse_time', 'cosine', 'linear',
               'inverse_sqrt', 'poly'):
    np.testing.assert_allclose(float(S.create(name, 0.5, 100)(0)), 0.5, rtol=1e-7)


def test_every_schedule_jits_on_an_int32_step():
  names = list(CASES)

  @jax.jit
  def all_at(step):
    return {n: CASES[n][0](step) for n in names}

  for t in (0, 31, 150):
    got = all_at(jnp.int32(t))
    for n in names:
      np.testing.assert_allclose(float(got[n]), float(CASES[n][1](np.float64(t))),
                                 rtol=2e-6, atol=1e-7, err_msg=n)


def test_cosine_no_int32_overflow_at_1e9_steps():
  """docs/references.md §Optimizer semantics: init 1000 over 1e10 steps, t = 1e9 → 975.52826."""
  sched = S.cosine_decay(1000.0, 1e10)
  expected = 500.0 * (1 + math.cos(math.pi * 0.1))
  assert abs(expected - 975.52826) < 1e-5
  for step in (10**9, jnp.int32(10**9)):
    np.testing.assert_allclose(float(sched(step)), 975.52826, rtol=1e-6)
  np.testing.assert_allclose(float(jax.jit(sched)(jnp.int32(10**9))), 975.52826, rtol=1e-6)
  # Every decay is finite and monotone far past int32's range of products.
  for name in ('linear_decay', 'poly_decay'):
    s = getattr(S, name)(1000.0, 1e10)
    np.testing.assert_allclose(float(s(jnp.int32(10**9))), 900.0, rtol=1e-6)


def test_x64_schedules_are_float64(x64):
  got = S.cosine_decay(1.0, 7.0)(jnp.arange(8))
  assert got.dtype == jnp.float64
  np.testing.assert_allclose(np.asarray(got), 0.5 * (1 + np.cos(np.pi * np.arange(8) / 7)),
                             rtol=1e-15, atol=1e-16)


def test_scale_by_batch_size_float():
  assert S.scale_by_batch_size(0.1, 1024) == pytest.approx(0.4)
  assert S.scale_by_batch_size(0.1, 64, base_batch_size=128) == pytest.approx(0.05)


@pytest.mark.parametrize('make, match', [
    (lambda: S.cosine_decay(1.0, 0), 'decay_steps'),
    (lambda: S.cosine_decay(float('nan'), 10), 'init_value'),
    (lambda: S.step_decay(1.0, [60, 30]), 'boundaries'),
    (lambda: S.exponential_decay(1.0, -0.1), 'rate'),
    (lambda: S.warmup(S.constant(1.0), -5), 'warmup_steps'),
    (lambda: S.scale_by_batch_size(0.1, 0), 'batch_size'),
    (lambda: S.scale_by_batch_size(-0.1, 32), 'learning_rate'),
    (lambda: S.create('cosine_restarts', 1.0, 100), "name must be one of"),
    (lambda: S.create('cosine', 1.0, 100, warmup_steps=100), 'warmup_steps'),
    (lambda: S.create('warmup_cosine', 1.0, 100), 'warmup_steps > 0'),
    (lambda: S.create('cosine', 1.0, 100, power=2), "unknown keyword"),
])
def test_bad_schedule_input(make, match):
  with pytest.raises(ValueError, match=match):
    make()
