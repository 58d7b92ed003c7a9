"""optim.minimize against scipy.optimize.minimize and closed forms (float64)."""
import importlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import optimize
from sklearn import datasets
from sklearn import linear_model
import threadpoolctl

import optim
from optim.second_order import result as result_lib
from tests.optim.second_order import zoo

pytestmark = pytest.mark.usefixtures('x64')

SCIPY = {'bfgs': 'BFGS', 'lbfgs': 'L-BFGS-B'}
GTOL = 1e-9


def _scipy_minimize(f, x0, method):
  value = jax.jit(f)
  grad = jax.jit(jax.grad(f))
  opts = {'gtol': GTOL} if method == 'BFGS' else {'gtol': GTOL, 'ftol': 1e-16}
  return optimize.minimize(lambda x: float(value(x)), np.asarray(x0),
                           jac=lambda x: np.asarray(grad(x)), method=method, options=opts)


@pytest.mark.parametrize('method', ['bfgs', 'lbfgs'])
def test_zoo_matches_scipy_minimizer_with_at_most_1_5x_evaluations(method):
  rows = []
  for name, index, x0 in zoo.CASES:
    ours = optim.minimize(zoo.zoo, jnp.asarray(x0), method=method, args=(jnp.int32(index),),
                          tol=GTOL, maxiter=500)
    ref = _scipy_minimize(zoo.FUNCTIONS[index], x0, SCIPY[method])
    assert ref.success, (name, ref.message)
    assert bool(ours.converged), (name, ours.reason)
    np.testing.assert_allclose(ours.x, ref.x, atol=1e-5, rtol=0, err_msg=name)
    # nfev counts every evaluation, line-search trials and the start included.
    rows.append((name, int(ours.nfev), ref.nfev))
    assert int(ours.nfev) <= 1.5 * ref.nfev, (name, int(ours.nfev), ref.nfev)
  assert len(rows) == 7


def test_pure_newton_rosenbrock_six_iterations():
  res = optim.minimize(zoo.rosenbrock, jnp.array([-1.2, 1.0]), method='newton', tol=1e-8,
                       options={'linesearch': None, 'learning_rate': 1.0}, history=True)
  assert bool(res.converged), res.reason
  assert int(res.iterations) == 6
  np.testing.assert_allclose(res.x, [1.0, 1.0], atol=1e-9)
  # Pure Newton is not monotone here (f rises at step 2), then quadratic convergence.
  f = res.history['fun']
  assert f.shape == (7,) and f[2] > f[1] and f[-1] < 1e-18


def _linear_lsq(x, a, b):
  r = a @ x['w'] + x['b'] - b
  return 0.5 * jnp.vdot(r, r)


def test_newton_on_linear_least_squares_lands_on_normal_equations_in_one_step():
  rng = np.random.default_rng(0)
  a = rng.normal(size=(20, 3))
  b = rng.normal(size=20)
  x0 = {'w': jnp.array([3.0, -1.0, 2.0]), 'b': jnp.array(5.0)}
  res = optim.minimize(_linear_lsq, x0, method='newton', args=(a, b), tol=1e-10)
  design = np.concatenate([a, np.ones((20, 1))], axis=1)
  expected = np.linalg.solve(design.T @ design, design.T @ b)
  assert int(res.iterations) == 1 and bool(res.converged)
  np.testing.assert_allclose(res.x['w'], expected[:3], rtol=1e-10, atol=1e-12)
  np.testing.assert_allclose(res.x['b'], expected[3], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize('method', ['newton_cg', 'gd_linesearch'])
def test_other_methods_reach_rosenbrock_minimum(method):
  maxiter = {'newton_cg': 200, 'gd_linesearch': 20000}[method]
  res = optim.minimize(zoo.rosenbrock, jnp.array([-1.2, 1.0]), method=method, tol=1e-6,
                       maxiter=maxiter)
  assert bool(res.converged), res.reason
  np.testing.assert_allclose(res.x, [1.0, 1.0], atol=1e-4)
  assert int(res.nfev) >= int(res.iterations)


def _softmax_regression_loss(params, x, y, l2):
  logits = x @ params['w'] + params['b']
  nll = -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], axis=1))
  return nll + 0.5 * l2 * jnp.sum(params['w'] ** 2)


def test_full_batch_lbfgs_softmax_regression_matches_sklearn_loss():
  digits = datasets.load_digits()
  x = digits.data / 16.0
  y = digits.target
  n, c = x.shape[0], 10
  big_c = 0.5
  # sklearn minimises C·Σᵢ CEᵢ + ½‖W‖² (intercept unpenalised); dividing by
  # C·n gives mean CE + ½·(1/(C·n))‖W‖².
  l2 = 1.0 / (big_c * n)
  ref = linear_model.LogisticRegression(C=big_c, solver='lbfgs', tol=1e-10, max_iter=10000)
  with threadpoolctl.threadpool_limits(1):  # BLAS threads crawl on a shared 2-core box
    ref.fit(x, y)
  args = (jnp.asarray(x), jnp.asarray(y), l2)
  ref_loss = float(_softmax_regression_loss(
      {'w': jnp.asarray(ref.coef_.T), 'b': jnp.asarray(ref.intercept_)}, *args))
  params0 = {'w': jnp.zeros((x.shape[1], c)), 'b': jnp.zeros(c)}
  res = optim.minimize(_softmax_regression_loss, params0, method='lbfgs', args=args,
                       tol=1e-7, maxiter=1000)
  assert bool(res.converged), res.reason
  assert abs(float(res.fun) - ref_loss) <= 1e-4
  assert float(res.fun) <= ref_loss + 1e-9
  assert np.mean(np.argmax(x @ res.x['w'] + res.x['b'], 1) == y) > 0.95


def _quadratic(x):
  return jnp.sum(x ** 2)


def test_diverging_run_stops_with_reason():
  # Fixed step 3 on f = Σx²: x ← x − 6x, |x| grows 5x per step until overflow.
  res = optim.minimize(_quadratic, jnp.array([1.0, -2.0]), method='gd_linesearch', maxiter=10000,
                       options={'linesearch': None, 'learning_rate': 3.0})
  assert not bool(res.converged)
  assert int(res.status) == result_lib.NON_FINITE
  assert 'non-finite' in res.reason
  assert int(res.iterations) < 1000
  assert np.all(np.isfinite(res.x))  # the last finite iterate is returned


def test_maxiter_reported():
  res = optim.minimize(zoo.rosenbrock, jnp.array([-1.2, 1.0]), method='gd_linesearch', maxiter=5)
  assert int(res.iterations) == 5 and not bool(res.converged)
  assert int(res.status) == result_lib.MAXITER and 'maximum' in res.reason


def test_history_records_every_iteration():
  res = optim.minimize(zoo.rosenbrock, jnp.array([-1.2, 1.0]), method='newton', history=True,
                       options={'linesearch': None, 'learning_rate': 1.0}, tol=1e-8)
  h = res.history
  assert set(h) == {'fun', 'grad_norm', 'nfev'}
  assert h['fun'].shape == (int(res.iterations) + 1,)
  np.testing.assert_allclose(h['fun'][0], 24.2)
  np.testing.assert_allclose(h['grad_norm'][-1], res.grad_norm)
  assert list(h['nfev']) == list(range(1, int(res.iterations) + 2))


@pytest.mark.parametrize('bad', [
    dict(x0=jnp.array([np.nan, 1.0])),
    dict(x0=jnp.array([np.inf, 1.0])),
    dict(x0=jnp.array([1, 2])),
    dict(method='nelder-mead'),
    dict(maxiter=0),
    dict(tol=-1.0),
    dict(options={'memory_size': 0}),
    dict(options={'not_an_option': 1}),
])
def test_bad_input_raises_value_error(bad):
  kwargs = dict(x0=jnp.array([-1.2, 1.0]), method='lbfgs')
  kwargs.update(bad)
  with pytest.raises(ValueError):
    optim.minimize(zoo.rosenbrock, **kwargs)


def test_compiles_once_for_new_data_and_starts():
  # The package re-exports the function `minimize`; fetch the module itself.
  run_jit = importlib.import_module('optim.second_order.minimize')._run_jit
  before = run_jit._cache_size()
  for index, x0 in ((3, (1.0, 2.0)), (4, (0.5, 0.5))):
    optim.minimize(zoo.zoo, jnp.asarray(x0), method='lbfgs', args=(jnp.int32(index),), tol=GTOL,
                   maxiter=500)
  after = run_jit._cache_size()
  assert after - before <= 1
