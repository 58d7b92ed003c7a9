"""Shared layers: the CPU depthwise convolution against torch and lax."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import vision
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


@pytest.mark.parametrize('name, overrides', [
    ('mit_b0', dict(embed_dims=(8, 8, 8, 8), depths=(1, 1, 1, 1), num_heads=(1, 1, 1, 1),
                    num_classes=3, img_size=32)),
    ('vit_tiny_patch16_224', dict(embed_dim=8, depth=1, num_heads=2, num_classes=3,
                                  img_size=32)),
])
def test_cpu_layers_support_forward_over_reverse(x64, name, overrides):
  """Newton-CG and Gauss-Newton take jvp of grad through the model: the CPU
  spellings (platform_dependent attention, custom_jvp GELU, shift-and-add
  depthwise conv) must stay forward-mode differentiable. The Hessian-vector
  product is checked against a central difference of gradients (float64)."""
  del x64
  module = vision.create_model(name, dtype=jnp.float64, **overrides)
  x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 32, 32, 3)), jnp.float64)
  params = jax.tree.map(lambda p: p.astype(jnp.float64),
                        module.init(jax.random.PRNGKey(0), x)['params'])
  loss = lambda p: jnp.sum(module.apply({'params': p}, x) ** 2)  # noqa: E731
  v = jax.tree.map(lambda p: jnp.full_like(p, 1e-2), params)
  _, hvp = jax.jit(lambda p, v: jax.jvp(jax.grad(loss), (p,), (v,)))(params, v)
  grad = jax.jit(jax.grad(loss))
  eps = 1e-4
  plus = grad(jax.tree.map(lambda p, t: p + eps * t, params, v))
  minus = grad(jax.tree.map(lambda p, t: p - eps * t, params, v))
  for h, a, b in zip(jax.tree.leaves(hvp), jax.tree.leaves(plus), jax.tree.leaves(minus)):
    np.testing.assert_allclose(np.asarray(h), (np.asarray(a) - np.asarray(b)) / (2 * eps),
                               rtol=1e-5, atol=1e-8)
