"""EMA and Polyak averaging: equal to hand-rolled averages of the same iterates; resumable."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optim
from optim import averaging


def _params():
  return {'w': jnp.arange(6, dtype=jnp.float32).reshape(2, 3) / 7, 'b': jnp.ones(3, jnp.float32)}


def _loss(p):
  return jnp.sum(jnp.sin(p['w']) ** 2) + jnp.sum((p['b'] - 0.3) ** 2)


def _run(tx, steps, params=None, state=None):
  """Trains `steps` steps; returns the iterates x_0..x_T, final params and state."""
  params = _params() if params is None else params
  state = tx.init(params) if state is None else state
  step = jax.jit(lambda p, s: _update(tx, p, s))
  iterates = [params]
  for _ in range(steps):
    params, state = step(params, state)
    iterates.append(params)
  return iterates, params, state


def _update(tx, params, state):
  updates, state = tx.update(jax.grad(_loss)(params), state, params)
  return optax.apply_updates(params, updates), state


def _stack(iterates):
  return {k: np.stack([np.asarray(x[k], np.float64) for x in iterates]) for k in iterates[0]}


@pytest.mark.parametrize('warmup', [False, True])
def test_ema_equals_hand_rolled(warmup):
  decay, after = 0.9, 2
  tx = optax.chain(optim.adam(0.05), averaging.ema(decay, warmup=warmup, warmup_power=0.75,
                                                   update_after_step=after))
  iterates, _, state = _run(tx, 25)
  xs = _stack(iterates)
  e = {k: v[0] for k, v in xs.items()}
  for t in range(1, 26):  # timm's ModelEmaV3.get_decay, then lerp
    s = max(0, t - after - 1)
    beta = 0.0 if s <= 0 else (min(decay, 1 - (1 + s) ** -0.75) if warmup else decay)
    e = {k: e[k] + (1 - beta) * (xs[k][t] - e[k]) for k in e}
  got = averaging.averaged_params(state)
  assert set(got) == {'ema'}
  for k in e:
    np.testing.assert_allclose(got['ema'][k], e[k], rtol=1e-5, atol=1e-6)
  assert int(state[1].count) == 25


@pytest.mark.parametrize('start', [0, 7])
def test_polyak_equals_mean_of_iterates(start):
  tx = optax.chain(optim.sgd(0.2, momentum=0.9), averaging.polyak(start_step=start))
  iterates, params, state = _run(tx, 20)
  xs = _stack(iterates)
  avg = averaging.averaged_params(state)['polyak']
  for k in xs:
    np.testing.assert_allclose(avg[k], xs[k][start:].mean(0), rtol=1e-5, atol=1e-6)
  # Before start_step the state tracks the current iterate.
  if start:
    _, p5, s5 = _run(tx, start - 1)
    np.testing.assert_array_equal(averaging.averaged_params(s5)['polyak']['w'], p5['w'])


def test_pass_through_and_both_in_one_chain():
  base = optim.adamw(0.01, weight_decay=0.05)
  tx = optax.chain(base, averaging.ema(0.99), averaging.polyak(3))
  _, p_avg, s = _run(tx, 10)
  _, p_base, _ = _run(base, 10)
  for k in p_base:  # the averaging transforms do not change the trajectory
    np.testing.assert_array_equal(p_avg[k], p_base[k])
  assert set(averaging.averaged_params(s)) == {'ema', 'polyak'}
  assert averaging.averaged_params(optim.sgd(0.1).init(_params())) == {}


def test_resume_from_a_pytree_of_arrays_is_bit_exact():
  tx = optax.chain(optim.adam(0.05), averaging.ema(0.95, warmup=True), averaging.polyak(4))
  _, p_full, s_full = _run(tx, 12)
  _, p_half, s_half = _run(tx, 6)
  leaves, treedef = jax.tree.flatten(s_half)
  assert all(isinstance(x, jax.Array) for x in leaves)
  restored = jax.tree.unflatten(treedef, [np.asarray(x) for x in leaves])  # as from disk
  _, p_res, s_res = _run(tx, 6, params=jax.tree.map(np.asarray, p_half), state=restored)
  for a, b in zip(jax.tree.leaves((p_full, s_full)), jax.tree.leaves((p_res, s_res))):
    np.testing.assert_array_equal(a, b)


def test_ema_decay_schedule_and_bad_values():
  t = jnp.arange(1, 6)
  np.testing.assert_allclose(averaging.ema_decay(t, 0.999), [0, .999, .999, .999, .999],
                             rtol=1e-6)
  # warmup with p = 1, γ = 1: β = s/(1+s), the uniform average of x_1..x_t.
  np.testing.assert_allclose(averaging.ema_decay(t, 0.999, warmup=True, warmup_power=1.0),
                             [0, 1 / 2, 2 / 3, 3 / 4, 4 / 5], rtol=1e-6)
  for bad in (lambda: averaging.ema(1.5), lambda: averaging.ema(-0.1),
              lambda: averaging.polyak(-1), lambda: averaging.polyak(2.5)):
    with pytest.raises(ValueError):
      bad()
  with pytest.raises(ValueError, match='needs the parameters'):
    tx = averaging.ema(0.9)
    tx.update(_params(), tx.init(_params()))
