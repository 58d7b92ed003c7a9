"""Mixup/CutMix: targets, the CutMix area correction, modes, and 1 device = 8 devices."""
from __future__ import annotations

import dataclasses
import functools

import jax
import ml_collections
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import mixing

K = 10


def _batch(b=16, h=12, w=10, seed=0):
  rng = np.random.default_rng(seed)
  images = rng.normal(size=(b, h, w, 3)).astype(np.float32)
  labels = rng.integers(0, K, size=b).astype(np.int32)
  return jnp.asarray(images), jnp.asarray(labels)


def _draw(mix, key, index, h, w):
  return jax.jit(mix.draw, static_argnums=(2, 3))(key, index, h, w)


def _hot(labels, eps):
  return np.eye(K)[np.asarray(labels)] * (1 - eps) + eps / K


def test_mixup_targets_follow_lambda_formula():
  images, labels = _batch()
  mix = mixing.Mixup(num_classes=K, mixup_alpha=0.8, mode='elem', label_smoothing=0.1)
  out, targets = jax.jit(mix)(jax.random.key(1), images, labels)
  targets = np.asarray(targets)
  np.testing.assert_allclose(targets.sum(-1), 1.0, rtol=1e-6)
  # λ_i recovered from the image: x̃ = λ x + (1-λ) x_flip, solve per example.
  x, xf, xm = (np.asarray(a, np.float64).reshape(16, -1) for a in (images, images[::-1], out))
  lam = np.sum((xm - xf) * (x - xf), -1) / np.sum((x - xf) ** 2, -1)
  want = lam[:, None] * _hot(labels, 0.1) + (1 - lam[:, None]) * _hot(labels[::-1], 0.1)
  np.testing.assert_allclose(targets, want, atol=1e-5)
  np.testing.assert_allclose(xm, lam[:, None] * x + (1 - lam[:, None]) * xf, atol=1e-5)
  assert len(np.unique(np.round(lam, 5))) > 8  # per-element draws


def test_cutmix_lambda_is_the_clipped_box_area():
  images, labels = _batch(b=64, h=9, w=14)
  ids = jnp.broadcast_to(jnp.arange(64, dtype=jnp.float32)[:, None, None, None], images.shape)
  mix = mixing.Mixup(num_classes=K, cutmix_alpha=1.0, mode='elem')
  out, targets = jax.jit(mix)(jax.random.key(2), ids, labels)
  out, targets = np.asarray(out), np.asarray(targets)
  clipped = 0
  for i in range(64):
    from_partner = out[i, ..., 0] == 63 - i
    assert np.all((out[i, ..., 0] == i) | from_partner)
    rows, cols = np.nonzero(from_partner)
    if rows.size:  # a rectangle
      assert from_partner[rows.min():rows.max() + 1, cols.min():cols.max() + 1].all()
      clipped += rows.min() == 0 or cols.min() == 0 or rows.max() == 8 or cols.max() == 13
    lam = 1 - from_partner.mean()
    y, yp = labels[i], labels[63 - i]
    if y != yp:
      np.testing.assert_allclose(targets[i, y], lam, atol=1e-6)
      np.testing.assert_allclose(targets[i, yp], 1 - lam, atol=1e-6)
  assert clipped > 0  # the correction was exercised


def test_cutmix_without_correction_keeps_beta_draw():
  images, labels = _batch(b=64)
  corrected = mixing.Mixup(num_classes=K, cutmix_alpha=1.0, mode='elem')
  raw = dataclasses.replace(corrected, correct_lam=False)
  key = jax.random.key(3)
  g = jnp.arange(64)
  lam_c, _, box = _draw(corrected, key, g, 12, 10)
  lam_r, _, _ = _draw(raw, key, g, 12, 10)
  box = np.asarray(box)
  area = (box[:, 1] - box[:, 0]) * (box[:, 3] - box[:, 2])
  np.testing.assert_allclose(lam_c, 1 - area / 120, atol=1e-6)
  # Unclipped side is 2⌊⌊H√(1-λ)⌋/2⌋ (timm's rand_bbox): the box never exceeds (1-λ)HW.
  assert np.all(area <= (1 - np.asarray(lam_r)) * 120 + 1e-4)
  assert not np.allclose(lam_c, lam_r)


@pytest.mark.parametrize('mode', mixing.MODES)
def test_modes_share_draws_as_documented(mode):
  images, labels = _batch(b=32)
  mix = mixing.Mixup(num_classes=K, mixup_alpha=1.0, cutmix_alpha=1.0, mode=mode,
                     switch_prob=0.5)
  idx = {'batch': jnp.zeros(32, jnp.int32), 'pair': jnp.minimum(jnp.arange(32), 31 - jnp.arange(32)),
         'elem': jnp.arange(32)}[mode]
  lam, cut, box = (np.asarray(a) for a in _draw(mix, jax.random.key(4), idx, 12, 10))
  if mode == 'batch':
    assert len(np.unique(lam)) == 1 and len(np.unique(cut)) == 1
  elif mode == 'pair':
    np.testing.assert_array_equal(lam, lam[::-1])
    np.testing.assert_array_equal(box, box[::-1])
    assert len(np.unique(lam)) > 4
  else:
    assert len(np.unique(lam)) > 16
  out, targets = jax.jit(mix)(jax.random.key(4), images, labels)
  np.testing.assert_allclose(np.asarray(targets).sum(-1), 1.0, rtol=1e-6)
  if mode == 'pair':  # both members of a pair: t_i + t_j = ỹ_i + ỹ_j
    t = np.asarray(targets)
    np.testing.assert_allclose(t + t[::-1], _hot(labels, 0) + _hot(labels[::-1], 0), atol=1e-6)


def test_probability_and_switch_statistics():
  mix = mixing.Mixup(num_classes=K, mixup_alpha=0.8, cutmix_alpha=1.0, prob=0.6,
                     switch_prob=0.3, mode='elem')
  n = 20000
  lam, cut, _ = (np.asarray(a) for a in _draw(mix, jax.random.key(5), jnp.arange(n), 224, 224))
  mixed = lam < 1
  # P(mixed) = prob (a Beta draw is < 1 almost surely; a CutMix box can be empty).
  assert abs(mixed.mean() - 0.6) < 0.015
  assert abs(cut.mean() - 0.6 * 0.3) < 0.015
  # Mixup λ ~ Beta(0.8, 0.8): mean 1/2, variance 1/(4(2α+1)) = 0.0962.
  m = lam[mixed & ~cut]
  assert abs(m.mean() - 0.5) < 0.01 and abs(m.var() - 0.25 / 2.6) < 0.006


def test_label_smoothing_without_mixing():
  images, labels = _batch()
  mix = mixing.Mixup(num_classes=K, mixup_alpha=1.0, prob=0.0, label_smoothing=0.1)
  out, targets = jax.jit(mix)(jax.random.key(0), images, labels)
  np.testing.assert_array_equal(out, images)
  np.testing.assert_allclose(targets, _hot(labels, 0.1), rtol=1e-6)


@pytest.mark.parametrize('mode', mixing.MODES)
def test_one_device_equals_eight_devices(mode):
  assert jax.local_device_count() == 8
  images, labels = _batch(b=32, seed=7)
  mix = mixing.Mixup(num_classes=K, mixup_alpha=0.8, cutmix_alpha=1.0, mode=mode,
                     label_smoothing=0.1)
  key = jax.random.key(11)
  whole_x, whole_t = jax.jit(mix)(key, images, labels)
  sharded = jax.pmap(functools.partial(mix, axis_name='batch'), axis_name='batch',
                     in_axes=(None, 0, 0))
  x8, t8 = sharded(key, images.reshape(8, 4, *images.shape[1:]), labels.reshape(8, 4))
  np.testing.assert_array_equal(np.asarray(t8).reshape(whole_t.shape), whole_t)
  np.testing.assert_array_equal(np.asarray(x8).reshape(whole_x.shape), whole_x)


def test_bad_values_raise_one_line():
  for kw, msg in ((dict(mixup_alpha=-1.0), 'mixup.mixup_alpha'), (dict(prob=1.5), 'mixup.prob'),
                  (dict(switch_prob=-0.1), 'mixup.switch_prob'), (dict(mode='row'), 'mixup.mode')):
    with pytest.raises(ValueError, match=msg) as e:
      mixing.Mixup(num_classes=K, **kw)
    assert '\n' not in str(e.value)
  cfg = mixing.default_config()
  cfg.cutmix_alpha = 1.0
  assert mixing.Mixup.from_config(cfg, K, 0.1).enabled
  images, labels = _batch(b=5)
  with pytest.raises(ValueError, match='even'):
    mixing.Mixup(num_classes=K, mixup_alpha=1.0)(jax.random.key(0), images, labels)


def test_from_experiment_folds_smoothing_and_rejects_incompatible_settings():
  config = ml_collections.ConfigDict(dict(loss='softmax_xent', label_smoothing=0.1,
                                          full_batch=False, task='classification',
                                          mixup=mixing.default_config().to_dict()))
  assert mixing.from_experiment(config, K) is None  # both alphas 0: off
  config.mixup.mixup_alpha = 0.8
  mix = mixing.from_experiment(config, K)
  assert mix.label_smoothing == 0.1 and mix.mixup_alpha == 0.8
  for key, value, msg in (('loss', 'hinge', 'hinge'), ('full_batch', True, 'full_batch'),
                          ('task', 'segmentation', 'classification')):
    bad = ml_collections.ConfigDict(config.to_dict())
    bad[key] = value
    with pytest.raises(ValueError, match=msg):
      mixing.from_experiment(bad, K)
