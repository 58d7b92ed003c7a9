"""`minimize(..., xtol=ε)`: the step-size stopping rule ‖θₖ₊₁ − θₖ‖ < ε."""
import jax.numpy as jnp
import numpy as np
import pytest

import optim
from optim.second_order import result as result_lib


def quadratic(x):
  return 0.5 * jnp.sum(jnp.asarray([1.0, 10.0]) * x ** 2)


def test_stops_at_the_first_short_step():
  x0 = jnp.asarray([3.0, -2.0])
  # Damped Newton on a quadratic: x ← x − ½H⁻¹∇f = x/2, steps halve each iteration.
  opts = {'linesearch': None, 'learning_rate': 0.5}
  res = optim.minimize(quadratic, x0, method='newton', tol=0.0, xtol=1e-3, maxiter=1000,
                       options=opts)
  k = int(res.iterations)
  assert int(res.status) == result_lib.SMALL_STEP and bool(res.converged)
  assert res.reason == 'converged: step size <= xtol'
  path = [np.asarray(optim.minimize(quadratic, x0, method='newton', tol=0.0, maxiter=i,
                                    options=opts).x) for i in (k - 2, k - 1)]
  np.testing.assert_allclose(np.asarray(res.x), 0.5 * path[1], rtol=1e-6)  # one step later
  assert np.linalg.norm(np.asarray(res.x) - path[1]) <= 1e-3
  assert np.linalg.norm(path[1] - path[0]) > 1e-3
  # Without xtol the same run goes on to maxiter.
  full = optim.minimize(quadratic, x0, method='newton', tol=0.0, maxiter=k + 5, options=opts)
  assert int(full.status) == result_lib.MAXITER and int(full.iterations) == k + 5


def test_lbfgs_with_xtol_converges_and_bad_xtol_is_rejected():
  res = optim.minimize(quadratic, jnp.asarray([3.0, -2.0]), tol=0.0, xtol=1e-8)
  assert bool(res.converged) and np.abs(np.asarray(res.x)).max() < 1e-6
  with pytest.raises(ValueError, match='xtol'):
    optim.minimize(quadratic, jnp.asarray([1.0, 1.0]), xtol=-1.0)
