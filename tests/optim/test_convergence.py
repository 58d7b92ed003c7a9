"""Optimizers minimise a parabola and Rosenbrock (optax alias_test pattern),
follow the golden heavy-ball/Nesterov trajectories of docs/references.md
§Optimizer semantics, and satisfy the textbook identities of momentum,
Nesterov and Adam's bias correction."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optim

STEPS = 20_000
TOL = 1e-2

# Hyper-parameters per create() name; torch-style defaults otherwise.
CONFIGS = {
    'sgd': dict(learning_rate=1e-3),
    'momentum': dict(learning_rate=1e-3),
    'nesterov': dict(learning_rate=1e-3),
    'adagrad': dict(learning_rate=0.5),
    'rmsprop': dict(learning_rate=5e-3),
    'adam': dict(learning_rate=1e-2),
    'adam_nobc': dict(learning_rate=1e-2),
    'adamw': dict(learning_rate=1e-2, weight_decay=1e-4),
    'amsgrad': dict(learning_rate=1e-1),
    'adadelta': dict(learning_rate=0.1),
    'adamax': dict(learning_rate=1e-1),
    'nadam': dict(learning_rate=3e-3),
}
# Adadelta's step grows only as √E[Δ²] does: a smaller rate keeps it from
# overshooting in Rosenbrock's curved valley.
OVERRIDES = {('adadelta', 'rosenbrock'): dict(learning_rate=0.03)}
# Read by tests/optim/test_coverage.py.
TESTED = frozenset(CONFIGS)


def _parabola():
  target = jnp.array([1.0, -1.0, 1.0])
  return jnp.array([-1.0, 10.0, 1.0]), target, lambda x: jnp.sum((x - target) ** 2)


def _rosenbrock():
  return (jnp.zeros(2), jnp.ones(2),
          lambda x: (1 - x[0]) ** 2 + 100 * (x[1] - x[0] ** 2) ** 2)


PROBLEMS = {'parabola': _parabola, 'rosenbrock': _rosenbrock}


@pytest.fixture(scope='module')
def solutions():
  """Final iterates of every optimizer on both problems: one compile per problem."""
  out = {}
  for problem, setup in PROBLEMS.items():
    x0, _, fun = setup()

    @jax.jit
    def solve(x0, fun=fun, problem=problem):
      finals = {}
      for name, hparams in CONFIGS.items():
        opt = optim.create(name, **{**hparams, **OVERRIDES.get((name, problem), {})})

        def body(_, carry, opt=opt):
          x, state = carry
          updates, state = opt.update(jax.grad(fun)(x), state, x)
          return optax.apply_updates(x, updates), state

        finals[name] = jax.lax.fori_loop(0, STEPS, body, (x0, opt.init(x0)))[0]
      return finals

    out[problem] = jax.tree.map(np.asarray, solve(x0))
  return out


@pytest.mark.parametrize('problem', list(PROBLEMS))
@pytest.mark.parametrize('name', sorted(CONFIGS))
def test_converges(name, problem, solutions):
  x0, target, _ = PROBLEMS[problem]()
  final = solutions[problem][name]
  err = np.max(np.abs(final - np.asarray(target)))
  assert err < TOL, f'{name} on {problem}: |x - x*| = {err:.3g} from {np.asarray(x0)}'


# --------------------------------------------------------------------------
# docs/references.md §Optimizer semantics (golden trajectories): loss ½(w·[5,6] − 4)²,
# lr 0.01, μ 0.7.

_A = np.array([5.0, 6.0])


def _grad(w):
  return (w @ _A - 4.0) * _A


def _iterates(opt, steps=5):
  w = jnp.ones(2)
  state = opt.init(w)
  out = []
  for _ in range(steps):
    updates, state = opt.update(jnp.asarray(_grad(np.asarray(w))), state, w)
    w = optax.apply_updates(w, updates)
    out.append(np.asarray(w))
  return out


def test_heavy_ball_golden(x64):
  ws = _iterates(optim.sgd(0.01, momentum=0.7))
  np.testing.assert_allclose(ws[0], [0.65, 0.58], rtol=1e-12)
  np.testing.assert_allclose(ws[4], [0.386205, 0.263446], atol=5e-7)


def test_nesterov_golden(x64):
  ws = _iterates(optim.sgd(0.01, momentum=0.7, nesterov=True))
  np.testing.assert_allclose(ws[4], [0.439241, 0.327089], atol=5e-7)


def test_momentum_formulations_identical(x64):
  """b = μb + g, x −= αb  ≡  v = μv − αg, x += v under a constant α."""
  lr, mu = 0.01, 0.7
  ours = _iterates(optim.sgd(lr, momentum=mu), steps=30)
  x, v = np.ones(2), np.zeros(2)
  for t in range(30):
    v = mu * v - lr * _grad(x)
    x = x + v
    np.testing.assert_allclose(ours[t], x, rtol=1e-13, atol=1e-15)


def test_nesterov_change_of_variables_equals_look_ahead(x64):
  """Look-ahead form v = μv − α∇f(x + μv), x += v, and the change-of-variables
  form on x̃ = x + μv (x̃ += −μv + (1+μ)v_new, gradient at x̃) give the same
  iterates, and those are what `sgd(nesterov=True)` produces (on x̃)."""
  lr, mu = 0.01, 0.7
  ours = _iterates(optim.sgd(lr, momentum=mu, nesterov=True), steps=30)
  x, v = np.ones(2), np.zeros(2)          # look-ahead
  xt, vt = np.ones(2), np.zeros(2)        # change of variables
  for t in range(30):
    v = mu * v - lr * _grad(x + mu * v)
    x = x + v
    v_new = mu * vt - lr * _grad(xt)
    xt = xt - mu * vt + (1 + mu) * v_new
    vt = v_new
    np.testing.assert_allclose(xt, x + mu * v, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(ours[t], xt, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize('b1', [0.9, 0.0])
def test_adam_bias_correction_first_step(b1, x64):
  """First step: corrected Adam moves every coordinate by exactly α (ε → 0),
  whatever the gradient's scale; without correction by α·(1−β₁)/√(1−β₂),
  i.e. 1/√(1−β₂) ≈ 31.6 times too far from the second moment alone (β₁ = 0)
  and ≈ 3.16 times with β₁ = 0.9."""
  lr, b2 = 1e-3, 0.999
  g = jnp.array([1e-3, -0.5, 2.0, -1e3])
  params = jnp.zeros(4)
  steps = {}
  for bc in (True, False):
    opt = optim.adam(lr, b1=b1, b2=b2, eps=1e-12, bias_correction=bc)
    steps[bc] = np.asarray(opt.update(g, opt.init(params), params)[0])
  np.testing.assert_allclose(np.abs(steps[True]), lr, rtol=1e-8)
  np.testing.assert_array_equal(np.sign(steps[True]), -np.sign(np.asarray(g)))
  ratio = np.abs(steps[False]) / np.abs(steps[True])
  np.testing.assert_allclose(ratio, (1 - b1) / np.sqrt(1 - b2), rtol=1e-6)
  if b1 == 0:
    np.testing.assert_allclose(ratio, 1 / np.sqrt(1 - b2), rtol=1e-6)
    assert 31.6 < ratio[0] < 31.7
