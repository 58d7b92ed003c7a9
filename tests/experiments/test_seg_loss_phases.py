"""The segmentation loss and train accuracy summed over the phases of the upsampled logits.

At integer upsampling factors (s_h, s_w) the loss never builds the upsampled
logits: pixel (s_h·q + r, s_w·p + t) of up(z) is pixel (q, p) of phase (r, t)
(`vision.kernels.upsample_phases`). Each result must equal upsampling first
and then reducing over the image, values and gradients; torch's
`interpolate` + `cross_entropy` is the independent reference.
"""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch
import torch.nn.functional as F

from experiments.segmentation import inference
from experiments.segmentation import losses
from experiments.segmentation import task as seg_task
from vision import kernels

FACTORS = [(4, 4), (1, 4), (3, 1), (2, 3), (8, 8)]


def _data(factors, seed=0, k=5, h=3, w=4, batch=2):
  rng = np.random.default_rng(seed)
  logits = rng.normal(size=(batch, h, w, k)).astype(np.float32)
  labels = rng.integers(0, k, size=(batch, h * factors[0], w * factors[1]))
  labels[0, : max(1, h * factors[0] // 3)] = 255
  labels[1, :, -1] = 255
  return jnp.asarray(logits), jnp.asarray(labels)


def _reference(logits, labels, average):
  """Upsample, then a per-image mean of the per-pixel cross-entropy."""
  up = inference.resize_logits(logits, labels.shape[1:])
  valid = labels != 255
  xent = optax.softmax_cross_entropy_with_integer_labels(up, jnp.where(valid, labels, 0))
  total = jnp.sum(jnp.where(valid, xent, 0.0), axis=(1, 2))
  if average == 'all':
    return total / (labels.shape[1] * labels.shape[2])
  return total / jnp.maximum(jnp.sum(valid, axis=(1, 2)), 1)


@pytest.mark.parametrize('factors', FACTORS)
def test_phases_are_the_strided_pixels_of_the_upsampled_map(factors):
  x, _ = _data(factors)
  size = (x.shape[1] * factors[0], x.shape[2] * factors[1])
  phases = jax.jit(lambda x: kernels.upsample_phases(x, factors))(x)
  assert len(phases) == factors[0] and all(len(row) == factors[1] for row in phases)
  for mode in ('tuned', 'portable'):  # the same blends; XLA may contract them differently
    with kernels.use(mode):
      up = jax.jit(lambda x: kernels.resize_bilinear(x, size))(x)
    for r in range(factors[0]):
      for t in range(factors[1]):
        np.testing.assert_allclose(phases[r][t], up[:, r::factors[0], t::factors[1]],
                                   atol=1e-6)


def test_upsample_phases_refuses_a_factor_below_one():
  with pytest.raises(ValueError, match='positive ints'):
    kernels.upsample_phases(jnp.zeros((1, 2, 2, 1)), (0, 2))


@pytest.mark.parametrize('average', ['valid', 'all'])
@pytest.mark.parametrize('factors', FACTORS)
def test_loss_and_gradient_equal_upsample_then_reduce(factors, average):
  logits, labels = _data(factors, seed=sum(factors))
  assert inference.label_phases(logits, labels) is not None
  ours = jax.jit(lambda z: losses.pixel_cross_entropy(z, labels, average=average))
  ref = jax.jit(lambda z: _reference(z, labels, average))
  np.testing.assert_allclose(ours(logits), ref(logits), rtol=1e-6)
  g_ours = jax.jit(jax.grad(lambda z: ours(z).sum()))(logits)
  g_ref = jax.jit(jax.grad(lambda z: ref(z).sum()))(logits)
  np.testing.assert_allclose(g_ours, g_ref, rtol=1e-5, atol=1e-8)


def test_loss_matches_torch_at_unequal_factors():
  logits, labels = _data((2, 3), seed=7)
  up = F.interpolate(torch.from_numpy(np.array(logits)).permute(0, 3, 1, 2),
                     size=labels.shape[1:], mode='bilinear', align_corners=False)
  target = torch.from_numpy(np.array(labels, np.int64))
  theirs = [F.cross_entropy(up[i:i + 1], target[i:i + 1],
                            ignore_index=255).item() for i in range(2)]
  np.testing.assert_allclose(losses.pixel_cross_entropy(logits, labels), theirs, rtol=1e-5)


@pytest.mark.parametrize('shapes', [((2, 5, 6, 4), (2, 12, 13)), ((2, 6, 6, 4), (2, 6, 6)),
                                    ((2, 8, 8, 4), (2, 4, 4))])
def test_other_sizes_take_the_resize(shapes):
  """Non-integer factors, equal sizes and downsampling resize the logits."""
  rng = np.random.default_rng(3)
  logits = jnp.asarray(rng.normal(size=shapes[0]).astype(np.float32))
  labels = jnp.asarray(rng.integers(0, 4, size=shapes[1]))
  assert inference.label_phases(logits, labels) is None
  np.testing.assert_allclose(losses.pixel_cross_entropy(logits, labels),
                             _reference(logits, labels, 'valid'), rtol=1e-6)


@pytest.mark.parametrize('factors', [(4, 4), (2, 3)])
def test_train_accuracy_equals_argmax_of_the_upsampled_logits(factors):
  logits, labels = _data(factors, seed=11, k=3)
  task = seg_task.Segmentation(num_classes=3)
  got = jax.jit(task.train_metrics)(logits, labels)['accuracy']
  pred = jnp.argmax(inference.resize_logits(logits, labels.shape[1:]), axis=-1)
  valid = labels != 255
  want = jnp.sum((pred == labels) & valid, axis=(1, 2)) / jnp.sum(valid, axis=(1, 2))
  np.testing.assert_allclose(got, want, rtol=1e-6)
