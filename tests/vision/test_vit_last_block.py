"""ViT's last block under class-token pooling computes the class token's row alone.

Every row of a block's output depends on the block's input only through the
keys and values and its own row, so the narrowed last block must give the
full network's logits and gradients, and save the work of T − 1 rows.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import vision


CFG = dict(img_size=32, patch_size=8, in_chans=3, num_classes=7, embed_dim=48, depth=3,
           num_heads=3, drop_path_rate=0.3)


def _model(**kw):
  return vision.create_model('vit_tiny_patch16_224', **{**CFG, **kw})


def _x(batch=5):
  return jnp.asarray(np.random.default_rng(0).standard_normal((batch, 32, 32, 3), np.float32))


def _flops(batch=5, **kw) -> float:
  """XLA's forward FLOPs (`vision.summary` GMACs × 2) of the model with `kw`."""
  info = vision.summary('vit_tiny_patch16_224', batch_size=batch, **{**CFG, **kw})
  return 2e9 * info['gmacs'] * batch


@pytest.mark.parametrize('remat', [False, True])
def test_narrowed_last_block_gives_the_full_logits_and_gradients(remat):
  full, narrowed = _model(full_last_block=True, remat=remat), _model(remat=remat)
  x, labels = _x(), jnp.arange(5) % 7
  variables = jax.jit(full.init)(jax.random.PRNGKey(1), x)
  assert (jax.tree.structure(variables) ==
          jax.tree.structure(jax.eval_shape(narrowed.init, jax.random.PRNGKey(1), x)))
  rngs = {'dropout': jax.random.PRNGKey(2)}  # drop path on: the same examples dropped

  def loss(module):
    def f(v):
      logits = module.apply(v, x, train=True, rngs=rngs)
      return -jnp.take_along_axis(jax.nn.log_softmax(logits), labels[:, None], 1).mean(), logits
    return jax.jit(jax.value_and_grad(f, has_aux=True))

  (l_full, y_full), g_full = loss(full)(variables)
  (l_narrow, y_narrow), g_narrow = loss(narrowed)(variables)
  np.testing.assert_allclose(y_narrow, y_full, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(l_narrow, l_full, rtol=1e-6)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6),
               g_narrow, g_full)
  eval_full = jax.jit(full.apply)(variables, x)
  np.testing.assert_allclose(jax.jit(narrowed.apply)(variables, x), eval_full,
                             rtol=1e-5, atol=1e-6)


def test_narrowed_last_block_skips_the_other_rows_work():
  b, d, tokens = 5, 48, 1 + (32 // 8) ** 2
  saved = _flops(b, full_last_block=True) - _flops(b, full_last_block=False)
  # At least the MLP (D → 4D → D) and output projection of the T − 1 other rows.
  assert saved >= 2 * b * (tokens - 1) * (8 * d * d + d * d)


@pytest.mark.parametrize('overrides', [dict(pool='gap'), dict(scan_blocks=True)])
def test_pooling_over_every_token_or_scanned_blocks_compute_the_full_block(overrides):
  """'gap' reads every row; a scanned stack has one block definition."""
  assert (_flops(full_last_block=False, **overrides) ==
          _flops(full_last_block=True, **overrides))


def test_summary_counts_the_full_last_block():
  info = vision.summary('vit_tiny_patch16_224', img_size=32, patch_size=8, num_classes=7)
  full = vision.summary('vit_tiny_patch16_224', img_size=32, patch_size=8, num_classes=7,
                        full_last_block=True)
  narrowed = vision.summary('vit_tiny_patch16_224', img_size=32, patch_size=8, num_classes=7,
                            full_last_block=False)
  assert info['gmacs'] == full['gmacs'] > narrowed['gmacs']
