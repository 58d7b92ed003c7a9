"""Second-order transforms: L-BFGS two-loop vs dense BFGS, safeguards, damping, optax use."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optim
from optim.second_order.bfgs import bfgs_update
from optim.second_order.newton import damped_cholesky_solve

N = 6


def _spd(seed, n=N, cond=100.0):
  rng = np.random.default_rng(seed)
  q, _ = np.linalg.qr(rng.normal(size=(n, n)))
  return q @ np.diag(np.geomspace(1.0, cond, n)) @ q.T


def _pairs(seed, m):
  rng = np.random.default_rng(seed)
  a = _spd(seed)
  s = rng.normal(size=(m, N))
  return s, s @ a  # y = A s, so sᵀy > 0


def _dense_bfgs(s_hist, y_hist, gamma):
  """(I − ρsyᵀ) H (I − ρysᵀ) + ρssᵀ from H = γI, oldest pair first (numpy)."""
  h = gamma * np.eye(N)
  for s, y in zip(s_hist, y_hist):
    rho = 1.0 / (y @ s)
    left = np.eye(N) - rho * np.outer(s, y)
    h = left @ h @ left.T + rho * np.outer(s, s)
  return h


def test_two_loop_equals_materialized_bfgs_matrix(x64):
  del x64
  s, y = _pairs(0, 5)
  gamma = (s[-1] @ y[-1]) / (y[-1] @ y[-1])
  rho = 1.0 / np.einsum('ij,ij->i', s, y)
  implicit = jax.vmap(lambda e: optim.two_loop(e, s, y, rho, gamma))(jnp.eye(N))
  dense = _dense_bfgs(s, y, gamma)
  np.testing.assert_allclose(implicit.T, dense, rtol=1e-10, atol=1e-12)
  # The expanded update used by dense BFGS is the same matrix.
  h = gamma * np.eye(N)
  for si, yi in zip(s, y):
    h = bfgs_update(jnp.asarray(h), jnp.asarray(si), jnp.asarray(yi))
  np.testing.assert_allclose(h, dense, rtol=1e-10, atol=1e-12)
  # Secant equation for the newest pair: H y = s.
  np.testing.assert_allclose(dense @ y[-1], s[-1], rtol=1e-9)


def test_lbfgs_transform_keeps_last_m_pairs_and_skips_bad_curvature(x64):
  del x64
  m = 3
  tx = optim.scale_by_lbfgs(memory_size=m)
  a = _spd(1)
  rng = np.random.default_rng(2)
  xs = rng.normal(size=(7, N))
  grads = xs @ a
  state = tx.init(jnp.asarray(xs[0]))
  update = jax.jit(tx.update)
  for k in range(6):
    direction, state = update(jnp.asarray(grads[k]), state, jnp.asarray(xs[k]))
  assert update._cache_size() == 1
  s = np.diff(xs[:6], axis=0)[-m:]
  y = np.diff(grads[:6], axis=0)[-m:]
  gamma = (s[-1] @ y[-1]) / (y[-1] @ y[-1])
  np.testing.assert_allclose(direction, -_dense_bfgs(s, y, gamma) @ grads[5], rtol=1e-9)
  # A pair with negative curvature (gradient falls along the step) is skipped.
  rho_before = np.asarray(state.rho_history)
  bad_grad = grads[5] - 5.0 * (xs[6] - xs[5]) @ a
  _, state = update(jnp.asarray(bad_grad), state, jnp.asarray(xs[6]))
  np.testing.assert_array_equal(state.rho_history, rho_before)
  assert int(state.count) == 7


def test_bfgs_with_exact_line_search_terminates_in_n_steps_on_quadratic(x64):
  # Quasi-Newton finite termination on a quadratic (Nocedal & Wright Thm 6.4 setting).
  del x64
  a = _spd(3, cond=1e3)
  b = np.random.default_rng(3).normal(size=N)
  res = optim.minimize(lambda x, a, b: 0.5 * x @ a @ x - b @ x, jnp.zeros(N), method='bfgs',
                       args=(a, b), tol=1e-6, options={'linesearch': 'exact'})
  assert bool(res.converged), res.reason
  assert int(res.iterations) <= N + 1
  np.testing.assert_allclose(res.x, np.linalg.solve(a, b), rtol=1e-5)


def test_damped_cholesky_makes_indefinite_hessian_positive_definite(x64):
  del x64
  h = jnp.array([[2.0, 0.0], [0.0, -3.0]])
  b = jnp.array([1.0, 1.0])
  x, tau = jax.jit(damped_cholesky_solve)(h, b)
  assert float(tau) > 3.0
  np.testing.assert_allclose((h + tau * jnp.eye(2)) @ x, b, rtol=1e-12)
  # So the Newton direction at a saddle is a descent direction.
  saddle = lambda p: p[0] ** 2 - p[1] ** 2  # noqa: E731
  p = jnp.array([1.0, 0.5])
  g = jax.grad(saddle)(p)
  tx = optim.scale_by_newton()
  d, _ = jax.jit(lambda g, s, p: tx.update(g, s, p, value_fn=saddle))(g, tx.init(p), p)
  assert float(g @ d) < 0


def test_every_second_order_name_builds_an_extra_args_transform():
  for name in optim.second_order.OPTIMIZERS:
    assert name in optim.names()
    assert isinstance(optim.create(name), optax.GradientTransformationExtraArgs), name
  for name in optim.second_order.MINIMIZERS:  # their value_fn may average over a pmap axis
    assert isinstance(optim.create(name, axis_name='batch'),
                      optax.GradientTransformationExtraArgs), name
  for name in optim.second_order.MINIMIZERS:  # the line search by name; 'none': a fixed step
    for linesearch in (*optim.second_order.LINESEARCHES, 'none'):
      lr = 0.5 if linesearch == 'none' else None
      tx = optim.create(name, linesearch=linesearch, learning_rate=lr)
      assert isinstance(tx, optax.GradientTransformationExtraArgs), (name, linesearch)
  with pytest.raises(ValueError, match="linesearch='wolfe' is not one of"):
    optim.create('newton', linesearch='wolfe')
  with pytest.raises(ValueError, match='learning_rate'):
    optim.create('lbfgs', learning_rate=0.1)  # the line search chooses the step


# bfgs and newton run the same chain through `minimize` in test_minimize.py.
@pytest.mark.parametrize('name', ['lbfgs', 'newton_cg', 'gd_linesearch'])
def test_created_by_name_train_float32_pytree_under_jit(name):
  # The trainer's full-batch contract: update(grads, state, params, value=, grad=, value_fn=).
  target = {'w': jnp.arange(6.0, dtype=jnp.float32).reshape(2, 3), 'b': jnp.float32(-1.0)}
  scales = {'w': jnp.array([[1.0, 2.0, 4.0], [8.0, 16.0, 32.0]], jnp.float32),
            'b': jnp.float32(3.0)}

  def loss(p):
    sq = jax.tree.map(lambda x, t, c: c * (x - t) ** 2 + 0.1 * (x - t) ** 4, p, target, scales)
    return sum(jnp.sum(v) for v in jax.tree.leaves(sq))

  tx = optim.create(name)
  assert isinstance(tx, optax.GradientTransformationExtraArgs)
  params = jax.tree.map(jnp.zeros_like, target)
  state = tx.init(params)

  @jax.jit
  def step(params, state):
    value, grads = jax.value_and_grad(loss)(params)
    updates, state = tx.update(grads, state, params, value=value, grad=grads, value_fn=loss)
    return optax.apply_updates(params, updates), state, value

  values = []
  for _ in range(25):
    params, state, value = step(params, state)
    values.append(float(value))
  assert step._cache_size() == 1
  assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(params))
  assert np.all(np.diff(values) <= 1e-6 * abs(values[0]))  # monotone with a line search
  assert values[-1] < 1e-2 * values[0]


def test_gauss_newton_and_lm_transforms_in_an_optax_loop(x64):
  del x64
  t = jnp.linspace(0.0, 1.0, 20)
  y = 3.0 * jnp.exp(-2.0 * t)
  residual_fn = lambda p: p['a'] * jnp.exp(-p['k'] * t) - y  # noqa: E731
  # Dense Gauss-Newton and Levenberg-Marquardt run through least_squares; here
  # the matrix-free (jvp/vjp + CG) path.
  for tx in (optim.levenberg(solver='cg'),):
    params = {'a': jnp.array(1.0), 'k': jnp.array(1.0)}
    state = tx.init(params)
    step = jax.jit(lambda p, s, tx=tx: tx.update(None, s, p, residual_fn=residual_fn))
    for _ in range(30):
      updates, state = step(params, state)
      params = optax.apply_updates(params, updates)
    np.testing.assert_allclose([params['a'], params['k']], [3.0, 2.0], rtol=1e-8)


def _local_loss(p, x, y):
  logits = x @ p['w'] + p['b']
  return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], axis=1))


# lbfgs: the zoom line search decides on gradients, the critical case.
@pytest.mark.parametrize('name', ['lbfgs'])
def test_pmap_full_batch_with_axis_name_matches_one_device(name, x64):
  # The trainer's full-batch step: value_fn = pmean of the per-device loss.
  del x64
  devices = jax.local_device_count()
  rng = np.random.default_rng(0)
  x = rng.normal(size=(devices * 8, 5))
  y = rng.integers(0, 3, size=devices * 8)
  params = {'w': jnp.zeros((5, 3)), 'b': jnp.zeros(3)}
  steps = 4

  tx_pmap = optim.create(name, axis_name='batch')

  def pmap_step(p, s, xd, yd):
    value_fn = lambda q: jax.lax.pmean(_local_loss(q, xd, yd), 'batch')  # noqa: E731
    value = value_fn(p)
    grads = jax.lax.pmean(jax.grad(_local_loss)(p, xd, yd), 'batch')
    u, s = tx_pmap.update(grads, s, p, value=value, grad=grads, value_fn=value_fn)
    return optax.apply_updates(p, u), s

  step = jax.pmap(pmap_step, axis_name='batch')
  rep = lambda t: jax.tree.map(lambda a: jnp.stack([a] * devices), t)  # noqa: E731
  p, s = rep(params), rep(tx_pmap.init(params))
  xs, ys = x.reshape(devices, 8, 5), y.reshape(devices, 8)
  for _ in range(steps):
    p, s = step(p, s, xs, ys)

  tx = optim.create(name)
  value_fn = lambda q: _local_loss(q, x, y)  # noqa: E731

  @jax.jit
  def one_step(q, st):
    value, grads = jax.value_and_grad(value_fn)(q)
    u, st = tx.update(grads, st, q, value=value, grad=grads, value_fn=value_fn)
    return optax.apply_updates(q, u), st

  q, st = params, tx.init(params)
  for _ in range(steps):
    q, st = one_step(q, st)
  for leaf_p, leaf_q in zip(jax.tree.leaves(p), jax.tree.leaves(q)):
    np.testing.assert_allclose(leaf_p, np.broadcast_to(leaf_p[0], leaf_p.shape), atol=1e-12)
    np.testing.assert_allclose(leaf_p[0], leaf_q, rtol=1e-8, atol=1e-10)
  assert float(value_fn(q)) < 0.95 * float(value_fn(params))
