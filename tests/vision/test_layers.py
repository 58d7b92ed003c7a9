"""Shared layers: the CPU depthwise convolution against torch and lax."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vision import layers


@pytest.mark.parametrize('k', [3, 5])
def test_depthwise_conv_matches_torch_grouped_conv_and_its_gradients(k):
  rng = np.random.default_rng(k)
  x = rng.normal(size=(2, 9, 7, 6)).astype(np.float32)
  kernel = rng.normal(size=(k, k, 1, 6)).astype(np.float32)
  xt = torch.tensor(x.transpose(0, 3, 1, 2), requires_grad=True)
  kt = torch.tensor(kernel.transpose(3, 2, 0, 1), requires_grad=True)
  yt = F.conv2d(xt, kt, padding=k // 2, groups=6)
  (yt ** 2).sum().backward()

  y = jax.jit(layers.depthwise_conv)(x, kernel)
  np.testing.assert_allclose(np.asarray(y), yt.detach().numpy().transpose(0, 2, 3, 1),
                             atol=1e-5, rtol=0)
  gk, gx = jax.jit(jax.grad(lambda k_, x_: (layers.depthwise_conv(x_, k_) ** 2).sum(),
                            argnums=(0, 1)))(kernel, x)
  np.testing.assert_allclose(np.asarray(gx), xt.grad.numpy().transpose(0, 2, 3, 1),
                             atol=1e-4, rtol=1e-5)
  np.testing.assert_allclose(np.asarray(gk), kt.grad.numpy().transpose(2, 3, 1, 0),
                             atol=1e-3, rtol=1e-5)


def test_depthwise_conv_module_has_nn_conv_parameters_and_values():
  x = jnp.asarray(np.random.default_rng(0).normal(size=(1, 5, 5, 4)), jnp.float32)
  ours = layers.DepthwiseConv(3)
  ref = nn.Conv(4, (3, 3), padding=((1, 1), (1, 1)), feature_group_count=4)
  variables = ref.init(jax.random.PRNGKey(0), x)
  assert jax.tree.map(jnp.shape, ours.init(jax.random.PRNGKey(0), x)) == \
      jax.tree.map(jnp.shape, variables)
  variables = jax.tree.map(lambda a: a + 0.1, variables)  # a non-zero bias too
  np.testing.assert_allclose(ours.apply(variables, x), ref.apply(variables, x), atol=1e-5)


def test_depthwise_conv_rejects_even_or_mismatched_kernels():
  x = jnp.zeros((1, 4, 4, 3))
  with pytest.raises(ValueError, match=r'odd k×k kernel \[k, k, 1, 3\], got \(2, 2, 1, 3\)'):
    layers.depthwise_conv(x, jnp.zeros((2, 2, 1, 3)))
  with pytest.raises(ValueError, match='got \\(3, 3, 1, 4\\)'):
    layers.depthwise_conv(x, jnp.zeros((3, 3, 1, 4)))
