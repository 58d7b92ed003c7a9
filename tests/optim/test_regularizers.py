"""L2, L1 and elastic-net penalties (course definitions) and their relation to
the optimizers' weight decay."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optim
from optim import regularizers

PARAMS = {'dense': {'kernel': jnp.array([[1.0, -2.0], [3.0, -4.0]]), 'bias': jnp.array([0.5, -0.5])},
          'norm': {'scale': jnp.array([2.0, 2.0])}}


def test_l2_l1_elastic_net_values():
  leaves = [np.asarray(x) for x in jax.tree.leaves(PARAMS)]
  sq = sum(np.sum(x ** 2) for x in leaves)
  ab = sum(np.sum(np.abs(x)) for x in leaves)
  assert float(optim.l2(PARAMS)) == pytest.approx(sq)          # 30 + 0.5 + 8
  assert float(optim.l1(PARAMS)) == pytest.approx(ab)          # 10 + 1 + 4
  assert float(optim.elastic_net(PARAMS, beta=0.3)) == pytest.approx(0.3 * sq + ab)
  assert sq == pytest.approx(38.5) and ab == pytest.approx(15.0)


def test_weights_mask_excludes_biases_and_norm_scales():
  assert float(optim.l2(PARAMS, mask='weights')) == pytest.approx(30.0)
  assert float(optim.l1(PARAMS, mask='weights')) == pytest.approx(10.0)
  only_norm = lambda path, x: 'norm' in jax.tree_util.keystr(path)  # noqa: E731
  assert float(optim.l2(PARAMS, mask=only_norm)) == pytest.approx(8.0)


def test_penalty_factory_and_gradients():
  pen = optim.penalty('l2', 0.1)
  assert float(pen(PARAMS)) == pytest.approx(3.85)
  grads = jax.grad(pen)(PARAMS)
  for g, p in zip(jax.tree.leaves(grads), jax.tree.leaves(PARAMS)):
    np.testing.assert_allclose(g, 0.2 * p, rtol=1e-6)           # ∇ λΣW² = 2λW
  g1 = jax.grad(optim.penalty('l1', 1.0))(PARAMS)
  for g, p in zip(jax.tree.leaves(g1), jax.tree.leaves(PARAMS)):
    np.testing.assert_array_equal(g, np.sign(p))
  en = optim.penalty('elastic_net', 2.0, beta=0.5, mask='weights')
  assert float(en(PARAMS)) == pytest.approx(2.0 * (0.5 * 30.0 + 10.0))
  assert float(optim.penalty('none', 1.0)(PARAMS)) == 0.0


def test_l2_penalty_equals_weight_decay_at_half_strength():
  """SGD with weight_decay λ' on loss L equals SGD on L + (λ'/2)·ΣW²."""
  loss = lambda p: jnp.sum(p['dense']['kernel'] @ jnp.ones(2))  # noqa: E731
  wd = 0.1
  a = optim.sgd(0.05, weight_decay=wd)
  b = optim.sgd(0.05)
  pa = pb = PARAMS
  sa, sb = a.init(pa), b.init(pb)
  for _ in range(3):
    ua, sa = a.update(jax.grad(loss)(pa), sa, pa)
    pa = optax.apply_updates(pa, ua)
    ub, sb = b.update(jax.grad(lambda p: loss(p) + optim.penalty('l2', wd / 2)(p))(pb), sb, pb)
    pb = optax.apply_updates(pb, ub)
  for x, y in zip(jax.tree.leaves(pa), jax.tree.leaves(pb)):
    np.testing.assert_allclose(x, y, rtol=1e-6)


@pytest.mark.parametrize('make, match', [
    (lambda: optim.penalty('l3', 0.1), 'kind'),
    (lambda: optim.penalty('l2', -0.1), 'strength'),
    (lambda: optim.penalty('l2', 0.1, mask='biases'), 'mask'),
    (lambda: optim.elastic_net(PARAMS, beta=-1.0), 'beta'),
    (lambda: regularizers.l2(PARAMS, mask=3), 'mask'),
])
def test_bad_penalty_input(make, match):
  with pytest.raises(ValueError, match=match):
    make()


@pytest.mark.parametrize('mask', [None, 'weights', lambda path, x: path[-1].key == 'kernel'])
def test_l2_residuals_half_squared_norm_is_the_penalty(mask):
  r = regularizers.l2_residuals(PARAMS, 0.3, mask)
  assert r.ndim == 1
  np.testing.assert_allclose(0.5 * jnp.sum(r ** 2), optim.penalty('l2', 0.3, mask=mask)(PARAMS),
                             rtol=1e-6)
  with pytest.raises(ValueError, match='strength'):
    regularizers.l2_residuals(PARAMS, -1.0)
