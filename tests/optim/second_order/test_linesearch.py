"""Line searches: the inequalities each one claims, and its failure modes (float64)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import optim
from optim.second_order import linesearch_base as base
from optim.second_order.backtracking import backtracking_search
from optim.second_order.brent import exact_search
from optim.second_order.zoom import zoom_search
from tests.optim.second_order import zoo

pytestmark = pytest.mark.usefixtures('x64')
C1, C2 = 1e-4, 0.9


def _rosen(x):
  return zoo.rosenbrock(x)


def _barrier(x):  # −log x + x: minimum at 1, NaN for x ≤ 0
  return jnp.sum(x - jnp.log(x))


def _everywhere_nan_but_start(x):
  return jnp.sum(x ** 2) + jnp.where(jnp.all(x == 2.0), 0.0, jnp.nan)


FNS = (_rosen, _barrier, _everywhere_nan_but_start)


def _fun(x, i):
  return jax.lax.switch(i, FNS, x)


@jax.jit
def _run_all(x, d, alpha0, i):
  f = lambda z: _fun(z, i)  # noqa: E731
  value, grad = jax.value_and_grad(f)(x)
  bt = backtracking_search(f, jax.grad(f), x, d, value, grad, alpha0, c1=C1,
                           max_evals=30)
  bt_short = backtracking_search(f, jax.grad(f), x, d, value, grad, alpha0, c1=C1,
                                 max_evals=2)
  zm = zoom_search(jax.value_and_grad(f), x, d, value, grad, alpha0, c1=C1, c2=C2)
  return value, grad, bt, bt_short, zm


def _check_result(res, f, x, d, value, grad):
  np.testing.assert_allclose(res.value, f(x + res.step * d), rtol=1e-12)
  np.testing.assert_allclose(res.grad, jax.grad(f)(x + res.step * d), rtol=1e-10, atol=1e-12)


ROSEN_STARTS = [(-1.2, 1.0), (0.0, 0.0), (1.5, 1.5), (-0.5, 2.0)]


@pytest.mark.parametrize('alpha0', [1e-5, 1e-3, 1.0, 30.0])
@pytest.mark.parametrize('start', ROSEN_STARTS)
def test_armijo_and_strong_wolfe_hold_on_rosenbrock(start, alpha0):
  x = jnp.asarray(start)
  g = jax.grad(_rosen)(x)
  d = -g
  value, grad, bt, _, zm = _run_all(x, d, alpha0, 0)
  slope = float(grad @ d)
  # Backtracking: Armijo at the step, and the step before (α/ρ) failed it.
  assert int(bt.status) == base.SUCCESS and float(bt.step) > 0
  assert float(bt.value) <= float(value) + C1 * float(bt.step) * slope
  if float(bt.step) < alpha0:
    prev = 2.0 * float(bt.step)
    assert float(_rosen(x + prev * d)) > float(value) + C1 * prev * slope
  _check_result(bt, _rosen, x, d, value, grad)
  # Zoom: both strong-Wolfe inequalities.
  assert int(zm.status) == base.SUCCESS, int(zm.status)
  assert float(zm.value) <= float(value) + C1 * float(zm.step) * slope
  assert abs(float(zm.grad @ d)) <= C2 * abs(slope)
  assert int(zm.num_value_evals) == int(zm.num_grad_evals) <= 30
  _check_result(zm, _rosen, x, d, value, grad)


def test_searches_back_off_from_non_finite_region():
  x = jnp.array([3.0, 2.0])
  d = -10.0 * jax.grad(_barrier)(x)  # a unit step lands at x < 0: NaN
  value, grad, bt, _, zm = _run_all(x, d, 1.0, 1)
  for res in (bt, zm):
    assert int(res.status) == base.SUCCESS
    assert np.isfinite(float(res.value)) and float(res.value) < float(value)


def test_non_finite_everywhere_along_d_is_reported():
  x = jnp.array([2.0, 2.0])
  d = -jax.grad(_everywhere_nan_but_start)(x)
  value, grad, bt, _, zm = _run_all(x, d, 1.0, 2)
  for res in (bt, zm):
    assert int(res.status) == base.NON_FINITE
    assert float(res.step) == 0.0 and float(res.value) == float(value)
    np.testing.assert_array_equal(res.grad, grad)


@pytest.mark.parametrize('kind, expected', [('uphill', base.NOT_DESCENT),
                                            ('zero', base.FLAT),
                                            ('orthogonal', base.FLAT)])
def test_non_descent_and_flat_directions_take_no_step(kind, expected):
  x = jnp.array([-1.2, 1.0])
  g = jax.grad(_rosen)(x)
  d = {'uphill': g, 'zero': jnp.zeros(2), 'orthogonal': jnp.array([-g[1], g[0]])}[kind]
  value, grad, bt, bt_short, zm = _run_all(x, d, 1.0, 0)
  for res in (bt, bt_short, zm):
    assert int(res.status) == expected
    assert float(res.step) == 0.0 and int(res.num_value_evals) == 0


def test_budget_exhaustion_is_reported():
  x = jnp.array([-1.2, 1.0])
  d = -jax.grad(_rosen)(x)
  _, _, _, bt_short, _ = _run_all(x, d, 1e3, 0)
  assert int(bt_short.status) == base.MAX_EVALS
  assert float(bt_short.step) == 0.0 and int(bt_short.num_value_evals) == 2


def test_non_finite_start_is_reported():
  f = lambda z: jnp.sum(z ** 2)  # noqa: E731
  x = jnp.array([1.0])
  res = backtracking_search(f, jax.grad(f), x, -x, jnp.nan, 2 * x, 1.0)
  assert int(res.status) == base.NON_FINITE and float(res.step) == 0.0


def test_exact_linesearch_finds_analytic_step_on_quadratic():
  rng = np.random.default_rng(0)
  m = rng.normal(size=(5, 5))
  a = jnp.asarray(m @ m.T + 5 * np.eye(5))
  b = jnp.asarray(rng.normal(size=5))
  f = lambda z: 0.5 * z @ a @ z - b @ z  # noqa: E731
  x = jnp.asarray(rng.normal(size=5))
  g = jax.grad(f)(x)
  search = jax.jit(lambda x, d, a0: exact_search(f, jax.grad(f), x, d, f(x), jax.grad(f)(x),
                                                  a0))
  for alpha0 in (1e-4, 1.0, 100.0):  # bracket grows, is already right, or shrinks
    res = search(x, -g, alpha0)
    optimal = float(g @ g / (g @ a @ g))
    assert int(res.status) == base.SUCCESS
    np.testing.assert_allclose(res.step, optimal, rtol=1e-7)
    # Exact minimiser along d: the new gradient is orthogonal to d.
    assert abs(float(res.grad @ g)) <= 1e-6 * float(g @ g)
    assert int(res.num_value_evals) < 60


def test_linesearch_transforms_under_jit_keep_dtype_and_compile_once():
  f = lambda p: jnp.sum((p['a'] - 1.0) ** 2) + 10.0 * jnp.sum(p['b'] ** 2)  # noqa: E731
  params = {'a': jnp.zeros(3, jnp.float32), 'b': jnp.ones((2, 2), jnp.float32)}
  for tx in (optim.backtracking_linesearch(), optim.zoom_linesearch(),
             optim.exact_linesearch()):
    state = tx.init(params)

    @jax.jit
    def step(params, state, tx=tx):
      value, grad = jax.value_and_grad(f)(params)
      direction = jax.tree.map(lambda g: -g, grad)
      return tx.update(direction, state, params, value=value, grad=grad, value_fn=f)

    p = params
    for _ in range(2):
      updates, state = step(p, state)
      p = jax.tree.map(lambda x, u: x + u, p, updates)
    assert step._cache_size() == 1
    assert jax.tree.map(lambda x: x.dtype, p) == jax.tree.map(lambda x: x.dtype, params)
    assert state.count.dtype == jnp.int32 and int(state.count) == 2
    assert int(state.status) == base.SUCCESS and float(state.learning_rate) > 0
    np.testing.assert_allclose(state.value, f(p), rtol=1e-6)
    assert float(f(p)) < float(f(params))


def test_linesearch_factories_reject_bad_constants():
  with pytest.raises(ValueError, match='c2'):
    optim.zoom_linesearch(c1=0.5, c2=0.1)
  with pytest.raises(ValueError, match='shrink'):
    optim.backtracking_linesearch(shrink=1.5)
  with pytest.raises(ValueError, match='initial_step'):
    optim.zoom_linesearch(initial_step='huge')
  with pytest.raises(ValueError, match='linesearch'):
    optim.lbfgs(linesearch='wolfe')
