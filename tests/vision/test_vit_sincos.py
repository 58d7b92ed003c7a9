"""ViT's fixed 2-D sin-cos position encoding (pos_embed='sinusoidal', MAE's layout)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import vision
from vision import vit


def test_table_by_hand():
  dim, grid = 8, (2, 3)  # quarter = 2: ω = (1, 1/100)
  table = vit.sincos_pos_embed_2d(dim, grid)
  assert table.shape == (1 + 6, 8)
  np.testing.assert_array_equal(table[0], 0)  # class token
  w = np.array([1.0, 0.01])
  for r in range(2):
    for c in range(3):
      want = np.concatenate([np.sin(c * w), np.cos(c * w), np.sin(r * w), np.cos(r * w)])
      np.testing.assert_allclose(table[1 + r * 3 + c], want, rtol=1e-6, atol=1e-7)


def test_vaswani_identity_relative_offsets_are_linear():
  # PE(p + k) is a rotation of PE(p) per frequency: ⟨PE(p), PE(p + k)⟩ depends on k only.
  t = vit.sincos_pos_embed_2d(64, (1, 10))[1:]
  dots = [t[p] @ t[p + 3] for p in range(7)]
  np.testing.assert_allclose(dots, dots[0], rtol=1e-5)


def test_model_uses_the_fixed_table_and_has_no_pos_param():
  kw = dict(img_size=16, patch_size=4, embed_dim=16, depth=1, num_heads=2, num_classes=3)
  x = jnp.asarray(np.random.RandomState(0).randn(2, 16, 16, 3), jnp.float32)
  fixed = vision.create_model('vit_tiny_patch16_224', pos_embed='sinusoidal', **kw)
  v = fixed.init(jax.random.PRNGKey(0), x)
  assert 'pos_embed' not in v['params']
  learned = vision.create_model('vit_tiny_patch16_224', **kw)
  params = dict(v['params'], pos_embed=vit.sincos_pos_embed_2d(16, (4, 4))[None])
  np.testing.assert_allclose(fixed.apply(v, x), learned.apply({'params': params}, x),
                             rtol=1e-5, atol=1e-6)
  with pytest.raises(ValueError, match='divisible by 4'):
    vision.create_model('vit_tiny_patch16_224', pos_embed='sinusoidal',
                        **dict(kw, embed_dim=18, num_heads=3)).validate()
  with pytest.raises(ValueError, match='pos_embed'):
    vision.create_model('vit_tiny_patch16_224', pos_embed='rope', **kw).validate()
