"""The classification losses against torch.nn.functional on the same inputs (float64 and float32)."""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from experiments import losses


def _inputs(dtype, k=7, b=11, seed=0):
  rng = np.random.default_rng(seed)
  logits = (rng.normal(size=(b, k)) * 3).astype(dtype)
  soft = rng.dirichlet(np.full(k, 0.5), size=b).astype(dtype)
  soft[0] = 0.0
  soft[0, 2] = 1.0  # a one-hot row: exercises 0 log 0 in KL
  labels = rng.integers(0, k, size=b).astype(np.int32)
  return logits, soft, labels


@pytest.mark.parametrize('dtype', [np.float64, np.float32])
def test_soft_losses_match_torch(dtype):
  """torch computes in the inputs' dtype; ours in float32 (the trainer's loss dtype)."""
  logits, soft, _ = _inputs(dtype)
  s, t = torch.from_numpy(logits), torch.from_numpy(soft)
  want = {
      'softmax_xent': F.cross_entropy(s, t, reduction='none'),
      'sigmoid_xent': F.binary_cross_entropy_with_logits(s, t, reduction='none').sum(-1),
      'kl': F.kl_div(F.log_softmax(s, -1), t, reduction='none', log_target=False).sum(-1),
  }
  for name, ref in want.items():
    got = np.asarray(losses.get(name)(jnp.asarray(logits), jnp.asarray(soft)))
    np.testing.assert_allclose(got, ref.numpy(), rtol=2e-6, atol=2e-6, err_msg=name)


def test_hard_labels_with_smoothing_match_torch():
  logits, _, labels = _inputs(np.float32, seed=2)
  s, y = torch.from_numpy(logits), torch.from_numpy(labels).long()
  eps, k = 0.1, logits.shape[1]
  np.testing.assert_allclose(losses.softmax_xent(logits, labels, eps),
                             F.cross_entropy(s, y, reduction='none', label_smoothing=eps).numpy(),
                             rtol=2e-6, atol=1e-6)
  t = F.one_hot(y, k).double() * (1 - eps) + eps / k
  np.testing.assert_allclose(
      losses.sigmoid_xent(logits, labels, eps),
      F.binary_cross_entropy_with_logits(s.double(), t, reduction='none').sum(-1).numpy(),
      rtol=2e-6, atol=1e-5)
  np.testing.assert_allclose(
      losses.kl(logits, labels, eps),
      F.kl_div(F.log_softmax(s.double(), -1), t, reduction='none').sum(-1).numpy(),
      rtol=2e-6, atol=1e-5)
  # Hard one-hot targets: KL equals cross-entropy (H(onehot) = 0).
  np.testing.assert_allclose(losses.kl(logits, labels), losses.softmax_xent(logits, labels),
                             rtol=1e-6, atol=1e-6)


def test_soft_equals_hard_on_one_hot():
  logits, _, labels = _inputs(np.float32, seed=3)
  onehot = np.eye(logits.shape[1], dtype=np.float32)[labels]
  for name in ('softmax_xent', 'sigmoid_xent', 'kl', 'l2'):
    fn = losses.get(name)
    np.testing.assert_allclose(fn(logits, onehot), fn(logits, labels), rtol=1e-6, err_msg=name)


def test_logistic_matches_torch():
  rng = np.random.default_rng(4)
  scores = (rng.normal(size=(5, 6)) * 10).astype(np.float32)
  y = rng.integers(0, 2, size=(5, 6)).astype(np.float32)
  want = F.binary_cross_entropy_with_logits(torch.from_numpy(scores), torch.from_numpy(y),
                                            reduction='none').numpy()
  np.testing.assert_allclose(losses.logistic(scores, y), want, rtol=1e-6, atol=1e-6)
  # Label smoothing: targets y(1 - ε) + ε/2.
  t = y * 0.8 + 0.1
  want = F.binary_cross_entropy_with_logits(torch.from_numpy(scores), torch.from_numpy(t),
                                            reduction='none').numpy()
  np.testing.assert_allclose(losses.logistic(scores, y, 0.2), want, rtol=1e-5, atol=1e-5)


def test_soft_targets_reject_smoothing_and_hinge():
  logits, soft, _ = _inputs(np.float32)
  with pytest.raises(ValueError, match='soft targets'):
    losses.softmax_xent(logits, soft, 0.1)
  with pytest.raises(ValueError, match='integer labels'):
    losses.hinge(logits, soft)
  with pytest.raises(ValueError, match='valid: softmax_xent'):
    losses.get('focal')
