"""Every optimizer: stable state types (no recompilation on the second
update), bf16 in → bf16 out, and the same numbers under jit and pmap."""
from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optim
from tests.optim import helpers

# Every create() name, plus the variants with extra state.
OPTIMIZERS = {name: (name, dict(learning_rate=1e-2)) for name in optim.registry.FIRST_ORDER}
OPTIMIZERS.update({
    'sgd_wd': ('sgd', dict(learning_rate=1e-2, weight_decay=1e-2)),
    'rmsprop_centered_momentum': ('rmsprop', dict(learning_rate=1e-2, centered=True,
                                                  momentum=0.9)),
    'adam_amsgrad_corrected': ('adam', dict(learning_rate=1e-2, amsgrad=True,
                                            amsgrad_max='corrected')),
    'adagrad_optax': ('adagrad', dict(learning_rate=1e-2, eps_in_sqrt=True,
                                      initial_accumulator_value=0.1)),
    'adam_schedule': ('adam', dict(learning_rate=optim.schedules.warmup(
        optim.schedules.cosine_decay(1e-2, 100), 10))),
})


def _make(key):
  name, hparams = OPTIMIZERS[key]
  return optim.create(name, **hparams)


def _params(dtype):
  return jax.tree.map(lambda x: jnp.asarray(x, dtype), helpers.init_params())


def _grads(dtype, seed=1):
  g = helpers.grad_sequence(1, seed=seed)
  return jax.tree.map(lambda x: jnp.asarray(x[0], dtype), g)


def _avals(tree):
  return jax.tree.map(lambda x: (x.shape, x.dtype, getattr(x, 'weak_type', False)), tree)


@pytest.mark.parametrize('key', list(OPTIMIZERS))
def test_state_types_stable_across_updates(key):
  """The state after an update has the init's structure, shapes, dtypes and
  weak types, so a jitted step never retraces (checked by tracing only)."""
  opt = _make(key)
  params = _params(jnp.float32)
  state0 = jax.eval_shape(opt.init, params)
  _, state1 = jax.eval_shape(opt.update, _grads(jnp.float32), state0, params)
  assert jax.tree.structure(state0) == jax.tree.structure(state1)
  assert _avals(state0) == _avals(state1)
  counts = [x for x in jax.tree.leaves(state0) if x.shape == () and x.dtype == jnp.int32]
  name = OPTIMIZERS[key][0]
  if name.startswith(('adam', 'amsgrad', 'nadam')) or key == 'adam_schedule':
    assert counts, f'{key}: expected an int32 step count in the state'


OPTS = {k: _make(k) for k in OPTIMIZERS}


def _step(params, states, grads):
  """One update of every optimizer; params/states are dicts keyed like OPTS."""
  new_p, new_s, ups = {}, {}, {}
  for k, opt in OPTS.items():
    ups[k], new_s[k] = opt.update(grads, states[k], params[k])
    new_p[k] = optax.apply_updates(params[k], ups[k])
  return new_p, new_s, ups


# One traced function per use, each allowed a single trace: chex raises if a
# second update (new state) retraces. (Distinct names: chex keys its trace
# counter on the function's source.)
@chex.assert_max_traces(n=1)
def _step_float32(params, states, grads):
  return _step(params, states, grads)


@chex.assert_max_traces(n=1)
def _step_bfloat16(params, states, grads):
  return _step(params, states, grads)


JITTED = {jnp.float32: jax.jit(_step_float32), jnp.bfloat16: jax.jit(_step_bfloat16)}


def _run(dtype, seeds):
  """Runs len(seeds) updates; returns the list of (updates, states)."""
  params = {k: _params(dtype) for k in OPTS}
  states = {k: opt.init(params[k]) for k, opt in OPTS.items()}
  out = []
  for seed in seeds:
    params, states, ups = JITTED[dtype](params, states, _grads(dtype, seed))
    out.append((ups, states))
  return out


@pytest.fixture(scope='module')
def runs():
  """Three updates per optimizer in float32 and bf16: one compile per dtype."""
  return {dtype: _run(dtype, (1, 2, 3)) for dtype in (jnp.float32, jnp.bfloat16)}


def test_no_recompilation_on_second_update(runs):
  # The fixture already made three calls per dtype under assert_max_traces(1).
  for dtype, fn in JITTED.items():
    assert fn._cache_size() == 1, dtype  # pylint: disable=protected-access
  for k in OPTS:
    for ups, _ in runs[jnp.float32]:
      assert all(np.all(np.isfinite(u)) for u in jax.tree.leaves(ups[k])), k


@pytest.mark.parametrize('key', list(OPTIMIZERS))
def test_bf16_params_give_bf16_updates(key, runs):
  for (updates, state), (ref, _) in zip(runs[jnp.bfloat16], runs[jnp.float32]):
    updates, state, ref = updates[key], state[key], ref[key]
    assert all(u.dtype == jnp.bfloat16 for u in jax.tree.leaves(updates))
    # Moments stay in the parameters' dtype (no silent float32 copies).
    for x in jax.tree.leaves(state):
      if x.ndim > 0:
        assert x.dtype == jnp.bfloat16, (key, x.dtype)
    for a, b in zip(jax.tree.leaves(updates), jax.tree.leaves(ref)):
      a, b = np.asarray(a, np.float32), np.asarray(b)
      assert np.all(np.isfinite(a))
      np.testing.assert_allclose(a, b, rtol=5e-2, atol=5e-2 * np.max(np.abs(b)))


def test_every_optimizer_under_pmap(runs):
  """pmap over 8 devices, each with its own gradients, equals jit per device."""
  n = jax.local_device_count()
  assert n == 8
  params = {k: _params(jnp.float32) for k in OPTS}
  states = {k: opt.init(params[k]) for k, opt in OPTS.items()}
  # Lay inputs out as pmap lays out its outputs (sharding taken from a tiny
  # pmap), so the second call, fed the first's outputs, reuses its trace.
  sharding = jax.pmap(lambda x: x)(jnp.zeros(n)).sharding
  put = lambda tree: jax.device_put(tree, sharding)  # noqa: E731
  replicate = lambda tree: put(jax.tree.map(  # noqa: E731
      lambda x: jnp.broadcast_to(x, (n,) + jnp.shape(x)), tree))
  # Device d sees gradient seeds (1 + 10d, 2 + 10d): device 0 replays `runs`.
  seeds = [(1 + 10 * d, 2 + 10 * d) for d in range(n)]
  traces = []

  def step_pmap(params, states, grads):
    traces.append(1)
    return _step(params, states, grads)

  stepped = jax.pmap(step_pmap)
  ps, ss = replicate(params), replicate(states)
  for i in (0, 1, 0):
    grads = put(jax.tree.map(lambda *xs: jnp.stack(xs),
                             *[_grads(jnp.float32, seeds[d][i]) for d in range(n)]))
    ps, ss, ups = stepped(ps, ss, grads)
    if i == 1:
      ups_2 = ups
  assert len(traces) == 1, f'pmap traced {len(traces)} times in 3 calls'

  ups = ups_2
  refs = {0: runs[jnp.float32][1][0], n - 1: _run(jnp.float32, seeds[n - 1])[1][0]}
  for d, ref in refs.items():
    for k in OPTS:
      for a, b in zip(jax.tree.leaves(ups[k]), jax.tree.leaves(ref[k])):
        np.testing.assert_allclose(np.asarray(a)[d], b, rtol=1e-5, atol=1e-8, err_msg=k)
  a = np.asarray(ups['adam']['dense']['kernel'])
  assert not np.allclose(a[0], a[-1])
