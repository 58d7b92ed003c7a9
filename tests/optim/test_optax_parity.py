"""Parity with optax where the semantics coincide, and through the
optax-compatible knobs where they differ (Adagrad, RMSProp, AMSGrad).

Both run from the same pytree on the same 100 gradients in float64 (one
compile for every pair); the parameter trajectories must agree to 1e-12.
"""
from __future__ import annotations

import jax
import numpy as np
import optax
import pytest

import optim
from tests.optim import helpers

STEPS = 100
LR = 0.01
COSINE = optim.schedules.cosine_decay(LR, STEPS, end_value=1e-4)

# id: (create name, our hyper-parameters, optax peer)
CASES = {
    'sgd': ('sgd', dict(learning_rate=LR), optax.sgd(LR)),
    'sgd_wd': ('sgd', dict(learning_rate=LR, weight_decay=0.1),
               optax.chain(optax.add_decayed_weights(0.1), optax.sgd(LR))),
    'momentum': ('momentum', dict(learning_rate=LR), optax.sgd(LR, momentum=0.9)),
    'nesterov': ('nesterov', dict(learning_rate=LR), optax.sgd(LR, momentum=0.9, nesterov=True)),
    'adam': ('adam', dict(learning_rate=LR), optax.adam(LR)),
    'adam_cosine': ('adam', dict(learning_rate=COSINE), optax.adam(COSINE)),
    'adamw': ('adamw', dict(learning_rate=LR, weight_decay=0.1),
              optax.adamw(LR, weight_decay=0.1)),
    'adamw_mask': ('adamw', dict(learning_rate=LR, weight_decay=0.1, mask='weights'),
                   optax.adamw(LR, weight_decay=0.1,
                               mask=lambda p: jax.tree.map(lambda x: x.ndim >= 2, p))),
    'adamw_callable_mask': ('adamw', dict(learning_rate=LR, weight_decay=0.1,
                                          mask=lambda p: {**jax.tree.map(lambda _: False, p),
                                                          'scale': True}),
                            optax.adamw(LR, weight_decay=0.1, mask=lambda p: {
                                **jax.tree.map(lambda _: False, p), 'scale': True})),
    'adamax': ('adamax', dict(learning_rate=LR), optax.adamax(LR)),
    # The knobs that reach optax's choices.
    'amsgrad_corrected': ('amsgrad', dict(learning_rate=LR, amsgrad_max='corrected'),
                          optax.amsgrad(LR)),
    'adagrad_optax': ('adagrad', dict(learning_rate=0.1, initial_accumulator_value=0.1,
                                      eps=1e-7, eps_in_sqrt=True), optax.adagrad(0.1)),
    'rmsprop_optax': ('rmsprop', dict(learning_rate=LR, decay=0.9, eps_in_sqrt=True),
                      optax.rmsprop(LR)),
    'rmsprop_centered_optax': ('rmsprop', dict(learning_rate=LR, decay=0.9, eps_in_sqrt=True,
                                               centered=True),
                               optax.rmsprop(LR, centered=True)),
    'rmsprop_eps_outside': ('rmsprop', dict(learning_rate=LR, decay=0.9),
                            optax.rmsprop(LR, eps_in_sqrt=False)),
}
# The torch defaults really differ from optax's on these (so the knobs matter).
DIFFERENT = {
    'adagrad_default': ('adagrad', dict(learning_rate=0.1), optax.adagrad(0.1)),
    'rmsprop_default': ('rmsprop', dict(learning_rate=LR, decay=0.9), optax.rmsprop(LR)),
    'amsgrad_raw': ('amsgrad', dict(learning_rate=LR), optax.amsgrad(LR)),
}
# Read by tests/optim/test_coverage.py.
TESTED = frozenset(name for name, _, _ in CASES.values())


@pytest.fixture(scope='module')
def trajectories():
  with helpers.x64():
    opts = {}
    for key, (name, hparams, peer) in {**CASES, **DIFFERENT}.items():
      opts[key + '/ours'] = optim.create(name, **hparams)
      opts[key + '/optax'] = peer
    params = helpers.init_params(np.float64)
    grads = helpers.grad_sequence(STEPS, np.float64)
    # Scale the gradients down so v̂ passes through small values where
    # eps placement matters.
    grads = jax.tree.map(lambda g: g * np.linspace(1.0, 1e-3, STEPS).reshape(
        (-1,) + (1,) * (g.ndim - 1)), grads)
    return helpers.run_many(opts, params, grads)


@pytest.mark.parametrize('key', list(CASES))
def test_optax_parity(key, trajectories):
  ours, theirs = trajectories[key + '/ours'], trajectories[key + '/optax']
  err = helpers.max_rel_error(ours, theirs)
  assert err <= 1e-12, f'{key}: {err:.3g}'
  start = helpers.init_params(np.float64)['dense']['kernel']
  assert np.max(np.abs(ours['dense']['kernel'][-1] - start)) > 1e-3


@pytest.mark.parametrize('key', list(DIFFERENT))
def test_torch_defaults_differ_from_optax(key, trajectories):
  err = helpers.max_rel_error(trajectories[key + '/ours'], trajectories[key + '/optax'])
  assert err > 1e-4, f'{key}: defaults unexpectedly match optax ({err:.3g})'


def test_global_norm_over_large_and_small_leaves_of_mixed_dtypes(x64):
  """Small leaves are reduced together, large ones alone: the same sum, another order."""
  rng = np.random.default_rng(0)
  tree = {'kernel': rng.normal(size=(300, 400)), 'bias': rng.normal(size=(400,)),
          'scale': np.float32(rng.normal(size=(7, 3))),
          'emb': np.float32(rng.normal(size=(2, 70000))),
          'half': jax.numpy.asarray(rng.normal(size=(5,)), jax.numpy.bfloat16),
          'empty': np.zeros((0, 3))}
  tree = jax.tree.map(jax.numpy.asarray, tree)
  exact = np.sqrt(sum(np.sum(np.square(np.asarray(x, np.float64))) for x in jax.tree.leaves(tree)))
  norm = jax.jit(optim.global_norm)(tree)
  assert norm.dtype == np.float64
  np.testing.assert_allclose(float(norm), exact, rtol=1e-6)  # float32 leaves sum in float32
  f64 = jax.tree.map(lambda x: x.astype(np.float64), tree)
  np.testing.assert_allclose(float(jax.jit(optim.global_norm)(f64)), exact, rtol=1e-14)
  small = optim.global_norm({'b': jax.numpy.ones((3,), jax.numpy.bfloat16)})
  assert small.dtype == np.float32 and float(small) == np.float32(np.sqrt(3.0))
  assert float(optim.global_norm({})) == 0.0


def test_clip_by_global_norm_matches_optax(x64):
  grads = jax.tree.map(lambda g: g[0], helpers.grad_sequence(1, np.float64))
  norm = float(optax.global_norm(grads))
  max_norms = (0.5 * norm, norm, 2.0 * norm)

  @jax.jit
  def both(grads):
    out = {'norm': optim.global_norm(grads)}
    for i, max_norm in enumerate(max_norms):
      for side, clip in (('ours', optim.clip_by_global_norm(max_norm)),
                         ('optax', optax.clip_by_global_norm(max_norm))):
        out[f'{side}{i}'] = clip.update(grads, clip.init(grads))[0]
      out[f'clipped{i}'] = optim.global_norm(out[f'ours{i}'])
    return out

  out = both(grads)
  np.testing.assert_allclose(float(out['norm']), norm, rtol=1e-14)
  for i, max_norm in enumerate(max_norms):
    for a, b in zip(jax.tree.leaves(out[f'ours{i}']), jax.tree.leaves(out[f'optax{i}'])):
      np.testing.assert_allclose(a, b, rtol=1e-14, atol=1e-300)
    assert float(out[f'clipped{i}']) <= min(max_norm, norm) * (1 + 1e-14)
