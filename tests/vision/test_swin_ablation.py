"""Swin's ablation switches (Liu et al. 2021, Table 4), used by configs/swin_ablation.py:
shifted windows, relative position bias, absolute position embedding, and `appearance=False`
("rel. pos. w/o app.": the attention scores are the relative bias alone, softmax(B)·V)."""
import flax
import jax
import jax.numpy as jnp
import numpy as np

import vision
from vision import swin

ABLATION = dict(img_size=16, patch_size=2, embed_dim=8, depths=(2, 2), num_heads=(1, 2),
                window_size=4, num_classes=3)


def _ablation_params(**switches):
  module = swin.SwinTransformer(**ABLATION, **switches)
  x = jnp.zeros((1, 16, 16, 3))
  return module, jax.eval_shape(module.init, jax.random.PRNGKey(0), x)['params']


def test_ablation_switches_change_exactly_the_expected_parameters():
  _, base = _ablation_params()
  n = vision.param_count(base)
  table_rows = (2 * 4 - 1) ** 2
  _, no_rel = _ablation_params(relative_position_bias=False)
  assert vision.param_count(no_rel) == n - table_rows * (2 * 1 + 2 * 2)
  _, ape = _ablation_params(relative_position_bias=False, absolute_pos_embed=True)
  assert vision.param_count(ape) == n - table_rows * 6 + (16 // 2) ** 2 * 8
  _, no_shift = _ablation_params(shifted_windows=False)
  assert vision.param_count(no_shift) == n


def test_ablation_switches_are_the_identity_at_zero_and_shift_matters():
  module, _ = _ablation_params()
  x = jnp.asarray(np.random.RandomState(0).randn(2, 16, 16, 3), jnp.float32)
  shapes = jax.eval_shape(module.init, jax.random.PRNGKey(0), x)['params']
  rng = np.random.RandomState(1)  # unit-scale weights: attention far from uniform
  flat = {k: jnp.asarray(rng.randn(*v.shape), jnp.float32)
          for k, v in flax.traverse_util.flatten_dict(shapes, sep='/').items()}
  zero_tables = {k: (jnp.zeros_like(v) if k.endswith('relative_position_bias_table') else v)
                 for k, v in flat.items()}
  no_tables = {k: v for k, v in flat.items() if not k.endswith('relative_position_bias_table')}

  def run(params, **switches):
    m = swin.SwinTransformer(**ABLATION, **switches)
    return m.apply({'params': flax.traverse_util.unflatten_dict(params, sep='/')}, x)

  # zero bias tables == no relative bias; a zero absolute embedding == none
  np.testing.assert_allclose(run(no_tables, relative_position_bias=False),
                             run(zero_tables), atol=1e-6)
  with_ape = dict(no_tables, absolute_pos_embed=jnp.zeros((1, 64, 8)))
  np.testing.assert_allclose(run(with_ape, relative_position_bias=False, absolute_pos_embed=True),
                             run(zero_tables), atol=1e-6)
  # the 8×8 stage has 4 windows, so the shift changes which tokens attend together
  assert np.max(np.abs(run(flat) - run(flat, shifted_windows=False))) > 1e-4


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
