"""Swin's `appearance=False` switch (Liu et al. 2021, Table 4 "rel. pos. w/o app."):
the attention scores are the relative bias alone, softmax(B)·V."""
import jax
import jax.numpy as jnp
import numpy as np

from vision import swin


def test_without_appearance_attention_is_softmax_of_the_bias():
  attn = swin.WindowAttention(num_heads=2, window_size=4, appearance=False)
  x = jnp.asarray(np.random.RandomState(0).randn(3, 16, 8), jnp.float32)
  params = attn.init(jax.random.PRNGKey(0), x, 4, None)['params']
  params = jax.tree.map(lambda a: a, params)
  params['qkv']['kernel'] = 50 * params['qkv']['kernel']  # scores far from uniform with QKᵀ
  params['relative_position_bias_table'] = jnp.zeros_like(params['relative_position_bias_table'])
  out = attn.apply({'params': params}, x, 4, None)
  # Zero bias and no QKᵀ: uniform attention, every token gets proj(mean of v).
  np.testing.assert_allclose(out, jnp.broadcast_to(out[:, :1], out.shape), atol=1e-6)
  qkv = x @ params['qkv']['kernel'] + params['qkv']['bias']
  v = qkv[..., 16:].mean(1, keepdims=True)
  ref = v @ params['proj']['kernel'] + params['proj']['bias']
  np.testing.assert_allclose(out[:, :1], ref, rtol=1e-5, atol=1e-6)
  # With appearance the same parameters give token-dependent outputs.
  with_app = swin.WindowAttention(num_heads=2, window_size=4).apply({'params': params}, x, 4, None)
  assert np.abs(with_app - with_app[:, :1]).max() > 1e-3


def test_scanned_and_unrolled_agree_without_appearance():
  kw = dict(img_size=16, patch_size=2, embed_dim=8, depths=(2, 2), num_heads=(1, 2),
            window_size=4, num_classes=3, appearance=False)
  x = jnp.asarray(np.random.RandomState(1).randn(2, 16, 16, 3), jnp.float32)
  unrolled = swin.SwinTransformer(**kw)
  variables = unrolled.init(jax.random.PRNGKey(0), x)
  scanned = swin.SwinTransformer(**kw, scan_blocks=True)
  stacked = {k: v for k, v in variables['params'].items() if '_blocks_' not in k}
  for i in range(2):
    blocks = [variables['params'][f'layers_{i}_blocks_{j}'] for j in range(2)]
    stacked[f'layers_{i}_blocks'] = jax.tree.map(lambda *a: jnp.stack(a), *blocks)
  np.testing.assert_allclose(scanned.apply({'params': stacked}, x),
                             unrolled.apply(variables, x), atol=2e-5)
