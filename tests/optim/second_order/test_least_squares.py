"""optim.least_squares against scipy.optimize.least_squares(method='lm') and docs/references.md."""
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import optimize

import optim
from optim.second_order import result as result_lib

pytestmark = pytest.mark.usefixtures('x64')

# Michaelis-Menten data (substrate concentration, reaction rate); docs/references.md
# §Independent test targets.
MM_S = np.array([0.038, 0.194, 0.425, 0.626, 1.253, 2.500, 3.740])
MM_RATE = np.array([0.050, 0.127, 0.094, 0.2122, 0.2729, 0.2665, 0.3317])


def rosenbrock_residuals(x):
  return jnp.sqrt(2.0) * jnp.stack([10.0 * (x[1] - x[0] ** 2), 1.0 - x[0]])


def michaelis_menten_residuals(beta, s, rate):
  return rate - beta[0] * s / (beta[1] + s)


def sinusoid_residuals(p, t, y):
  return p['amplitude'] * jnp.sin(p['omega'] * t + p['phase']) + p['offset'] - y


def _sinusoid_data():
  rng = np.random.default_rng(0)
  t = np.linspace(0.0, 10.0, 60)
  y = 2.0 * np.sin(1.3 * t + 0.4) + 0.5 + 0.05 * rng.normal(size=t.shape)
  return t, y


def _scipy_lm(fun, x0):
  return optimize.least_squares(lambda x: np.asarray(fun(jnp.asarray(x))), np.asarray(x0),
                                method='lm', xtol=1e-15, ftol=1e-15, gtol=1e-15)


def test_lm_rosenbrock_matches_scipy():
  res = optim.least_squares(rosenbrock_residuals, jnp.array([-1.2, 1.0]),
                            method='levenberg_marquardt')
  ref = _scipy_lm(rosenbrock_residuals, [-1.2, 1.0])
  assert bool(res.converged), res.reason
  np.testing.assert_allclose(res.x, ref.x, atol=1e-6)
  np.testing.assert_allclose(res.x, [1.0, 1.0], atol=1e-8)


@pytest.mark.parametrize('solver', ['cholesky', 'cg'])
def test_levenberg_nielsen_rosenbrock_about_16_iterations(solver):
  # docs/references.md §Independent test targets: Nielsen damping, tau = 1e-3, D = I:
  # (1, 1) in about 16 iterations.
  res = optim.least_squares(rosenbrock_residuals, jnp.array([-1.2, 1.0]), method='levenberg',
                            options={'tau': 1e-3, 'solver': solver}, history=True)
  assert bool(res.converged), res.reason
  np.testing.assert_allclose(res.x, [1.0, 1.0], atol=1e-8)
  assert 13 <= int(res.iterations) <= 19, int(res.iterations)
  # The cost never rises: rejected trials leave x (and the cost) unchanged.
  assert np.all(np.diff(res.history['fun']) <= 1e-15)


@pytest.mark.parametrize('method', ['levenberg_marquardt', 'gauss_newton'])
def test_michaelis_menten(method):
  args = (jnp.asarray(MM_S), jnp.asarray(MM_RATE))
  res = optim.least_squares(michaelis_menten_residuals, jnp.array([0.1, 0.1]), method=method,
                            args=args)
  ref = _scipy_lm(lambda b: michaelis_menten_residuals(b, *args), [0.1, 0.1])
  assert bool(res.converged), res.reason
  np.testing.assert_allclose(res.x, ref.x, atol=1e-6)
  np.testing.assert_allclose(res.x, [0.36183689, 0.55626653], atol=1e-6)
  np.testing.assert_allclose(res.fun, ref.cost, rtol=1e-10)


def test_lm_sinusoid_fit_pytree_matches_scipy():
  t, y = _sinusoid_data()
  x0 = {'amplitude': jnp.array(1.5), 'omega': jnp.array(1.2), 'phase': jnp.array(0.0),
        'offset': jnp.array(0.0)}
  res = optim.least_squares(sinusoid_residuals, x0, method='levenberg_marquardt', args=(t, y))
  keys = sorted(x0)
  unflat = lambda v: dict(zip(keys, v))  # noqa: E731
  ref = _scipy_lm(lambda v: sinusoid_residuals(unflat(v), t, y), [x0[k] for k in keys])
  assert bool(res.converged), res.reason
  np.testing.assert_allclose([res.x[k] for k in keys], ref.x, atol=1e-6)
  truth = {'amplitude': 2.0, 'omega': 1.3, 'phase': 0.4, 'offset': 0.5}
  np.testing.assert_allclose([res.x[k] for k in keys], [truth[k] for k in keys], atol=0.05)
  np.testing.assert_allclose(res.fun, ref.cost, rtol=1e-9)
  np.testing.assert_allclose(res.grad_norm, 0.0, atol=1e-8)


def _log_residuals(x):
  return jnp.log(x)


def test_non_finite_residuals_stop_with_reason():
  res = optim.least_squares(_log_residuals, jnp.array([-1.0, 2.0]),
                            method='levenberg_marquardt')
  assert not bool(res.converged)
  assert int(res.status) == result_lib.NON_FINITE and 'non-finite' in res.reason
  assert int(res.iterations) == 0


@pytest.mark.parametrize('residual_fn, method, match', [
    (lambda x: jnp.sum(x ** 2), 'levenberg_marquardt', '1-D'),
    (lambda x: jnp.outer(x, x), 'levenberg_marquardt', '1-D'),
    (lambda x: jnp.round(x).astype(jnp.int32), 'levenberg_marquardt', 'floating'),
    (lambda x: x[:1], 'gauss_newton', 'at least as many'),
    (rosenbrock_residuals, 'dogleg', 'method'),
])
def test_bad_residuals_or_method_raise(residual_fn, method, match):
  with pytest.raises(ValueError, match=match):
    optim.least_squares(residual_fn, jnp.array([-1.2, 1.0]), method=method)


def test_bad_start_and_options_raise():
  with pytest.raises(ValueError, match='non-finite'):
    optim.least_squares(rosenbrock_residuals, jnp.array([np.nan, 1.0]))
  with pytest.raises(ValueError, match='tau'):
    optim.least_squares(rosenbrock_residuals, jnp.array([-1.2, 1.0]), options={'tau': 0.0})
  with pytest.raises(ValueError, match='scaling'):
    optim.least_squares(rosenbrock_residuals, jnp.array([-1.2, 1.0]),
                        options={'solver': 'cg'})
