"""Shared layers: nn.Conv/nn.Dense-compatible modules, the drop-path schedule, and
forward-over-reverse differentiation through the models in both kernel modes."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import vision
from vision import kernels
from vision import layers


@pytest.mark.parametrize('mode', ['tuned', 'portable'])
@pytest.mark.parametrize('ours, ref, shape', [
    (layers.PatchEmbed(5, 4), nn.Conv(5, (4, 4), strides=(4, 4), padding='VALID'), (2, 8, 12, 3)),
    (layers.PatchEmbed(5, 4), nn.Conv(5, (4, 4), strides=(4, 4), padding='VALID'), (2, 9, 10, 3)),
    (layers.Dense(4), nn.Dense(4), (2, 3, 7)),
    (layers.DepthwiseConv(3), nn.Conv(4, (3, 3), padding=((1, 1), (1, 1)), feature_group_count=4),
     (1, 5, 5, 4)),
], ids=['patch_embed', 'patch_embed_ragged', 'dense', 'depthwise_conv'])
def test_module_has_the_flax_layers_parameters_and_values(mode, ours, ref, shape):
  x = jnp.asarray(np.random.default_rng(0).normal(size=shape), jnp.float32)
  variables = ref.init(jax.random.PRNGKey(0), x)
  assert jax.tree.map(jnp.shape, ours.init(jax.random.PRNGKey(0), x)) == \
      jax.tree.map(jnp.shape, variables)
  variables = jax.tree.map(lambda a: a + 0.1, variables)  # a non-zero bias too
  with kernels.use(mode):
    got = jax.jit(lambda v, x: ours.apply(v, x))(variables, x)
  np.testing.assert_allclose(got, ref.apply(variables, x), atol=1e-5)


def test_drop_path_rates_are_linear_over_all_blocks():
  rates = layers.drop_path_rates(0.3, (1, 2, 1, 1))
  np.testing.assert_allclose(sum(rates, []), [0.0, 0.075, 0.15, 0.225, 0.3])
  assert [len(r) for r in rates] == [1, 2, 1, 1]
  [single] = layers.drop_path_rates(0.2, (12,))
  np.testing.assert_allclose(single, np.linspace(0, 0.2, 12))
  assert single[0] == 0.0 and single[-1] == pytest.approx(0.2)


@pytest.mark.parametrize('name, overrides', [
    ('mit_b0', dict(embed_dims=(8, 8, 8, 8), depths=(1, 1, 1, 1), num_heads=(1, 1, 1, 1),
                    num_classes=3, img_size=32)),
    ('vit_tiny_patch16_224', dict(embed_dim=8, depth=1, num_heads=2, num_classes=3,
                                  img_size=32)),
])
@pytest.mark.parametrize('mode', ['auto', 'portable'])
def test_layers_support_forward_over_reverse(x64, name, overrides, mode):
  """Newton-CG and Gauss-Newton take jvp of grad through the model: every kernel
  spelling (platform_dependent selection, custom_jvp GELU, shift-and-add
  depthwise conv, and the portable ones) must stay forward-mode differentiable.
  The Hessian-vector product is checked against a central difference of
  gradients (float64)."""
  del x64
  module = vision.create_model(name, dtype=jnp.float64, **overrides)
  x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 32, 32, 3)), jnp.float64)
  params = jax.tree.map(lambda p: p.astype(jnp.float64),
                        module.init(jax.random.PRNGKey(0), x)['params'])
  with kernels.use(mode):
    _check_hvp(module, params, x)


def _check_hvp(module, params, x):
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
