"""Swin Transformer: parameter counts, hand-built window cases, HF parity, weight import.

Parity oracle: HuggingFace transformers `SwinForImageClassification` /
`SwinBackbone` (PyTorch, CPU, eval mode) with random weights, saved to
safetensors and read back through `vision.load_pretrained`.
"""
import functools
import math

import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.special
import torch
from safetensors.numpy import save_file as save_numpy
from safetensors.torch import save_file
from transformers import SwinBackbone
from transformers import SwinConfig
from transformers import SwinForImageClassification

import vision
from vision import swin
from vision.weights import swin as swin_weights

# Exact counts with a 1000-class head; T/S/B from docs/references.md, B-384 and L
# from the numel of HF SwinForImageClassification with the same config.
EXPECTED_PARAMS = {
    'swin_tiny_patch4_window7_224': 28_288_354,
    'swin_small_patch4_window7_224': 49_606_258,
    'swin_base_patch4_window7_224': 87_768_224,
    'swin_base_patch4_window12_384': 87_903_584,
    'swin_large_patch4_window7_224': 196_532_476,
}

# Small HF config: 26 px / patch 2 gives stages of 13, 7, 4 tokens a side, none a
# multiple of the window 3 (padding on every stage, odd sizes at both merges), all
# larger than the window so every odd block is shifted (and HF does not crash).
SMALL = dict(img_size=26, patch_size=2, embed_dim=16, depths=(2, 2, 2), num_heads=(1, 2, 4),
             window_size=3)
SMALL_CLASSES = 7


def _hf_config(img_size, patch_size, embed_dim, depths, num_heads, window_size, **kw):
  return SwinConfig(image_size=img_size, patch_size=patch_size, embed_dim=embed_dim,
                    depths=list(depths), num_heads=list(num_heads), window_size=window_size,
                    **kw)


def _randomize(model: torch.nn.Module, seed: int) -> None:
  """Unit-scale random weights (HF zero-initialises the bias tables and LN)."""
  gen = torch.Generator().manual_seed(seed)
  with torch.no_grad():
    for name, p in model.named_parameters():
      noise = torch.randn(p.shape, generator=gen)
      if 'relative_position_bias_table' in name:
        p.copy_(noise)
      elif p.ndim == 1:  # LayerNorm scale (1-D 'weight') and every bias
        p.copy_((1.0 if name.endswith('weight') else 0.0) + 0.2 * noise)
      else:
        p.copy_(noise / math.sqrt(p[0].numel()))


def _state_dict(model: torch.nn.Module) -> dict[str, np.ndarray]:
  return {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}


def _nchw(x: np.ndarray) -> torch.Tensor:
  return torch.from_numpy(x).permute(0, 3, 1, 2)


def _flat(tree) -> dict:
  return flax.traverse_util.flatten_dict(flax.core.unfreeze(tree), sep='/')


@pytest.fixture(scope='module')
def small_hf(tmp_path_factory):
  """(HF model, state dict, checkpoint path, images, HF logits) for SMALL."""
  torch.manual_seed(0)
  model = SwinForImageClassification(_hf_config(**SMALL, num_labels=SMALL_CLASSES)).eval()
  _randomize(model, 0)
  sd = _state_dict(model)
  path = str(tmp_path_factory.mktemp('swin') / 'small.safetensors')
  save_numpy(sd, path)
  x = np.random.RandomState(0).randn(2, 26, 26, 3).astype(np.float32)
  with torch.no_grad():
    logits = model(_nchw(x)).logits.numpy()
  return model, sd, path, x, logits


@pytest.fixture(scope='module')
def small_loaded(small_hf):
  _, _, path, _, _ = small_hf
  return vision.load_pretrained('swin_tiny_patch4_window7_224', path, **SMALL)


# --------------------------------------------------------------------------
# Registry and parameter counts.


def test_registered_names():
  assert {n for n in vision.list_models() if n.startswith('swin')} == set(EXPECTED_PARAMS)
  for name in EXPECTED_PARAMS:
    assert vision.get_model_def(name).family == 'swin'


@pytest.mark.parametrize('name', sorted(EXPECTED_PARAMS))
def test_param_count(name):
  model = vision.create_model(name)
  size = model.img_size
  shapes = jax.eval_shape(lambda: model.init(
      jax.random.PRNGKey(0), jnp.zeros((1, size, size, 3)), train=False))
  assert vision.param_count(shapes) == EXPECTED_PARAMS[name]
  assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(shapes))


# --------------------------------------------------------------------------
# Hand-built small cases.


def test_relative_position_index_window2():
  # index = (dy + 1)·3 + (dx + 1), tokens (0,0), (0,1), (1,0), (1,1).
  expected = np.array([[4, 3, 1, 0],
                       [5, 4, 2, 1],
                       [7, 6, 4, 3],
                       [8, 7, 5, 4]])
  np.testing.assert_array_equal(swin.relative_position_index(2), expected)


def test_relative_position_index_shrunken_window_reads_table_centre():
  # A 2×2 window reading a table built for M=3: index = (dy + 2)·5 + (dx + 2).
  expected = np.array([[12, 11, 7, 6],
                       [13, 12, 8, 7],
                       [17, 16, 12, 11],
                       [18, 17, 13, 12]])
  np.testing.assert_array_equal(swin.relative_position_index(2, table_window=3), expected)
  full = swin.relative_position_index(7)
  assert full.min() == 0 and full.max() == 13 ** 2 - 1 and len(np.unique(full)) == 13 ** 2


def test_shifted_window_mask_4x4_window2_shift1():
  # Region ids on the 4×4 map (slices (0,-2), (-2,-1), (-1,None) per axis):
  #   0 0 1 2 / 0 0 1 2 / 3 3 4 5 / 6 6 7 8; windows are 2×2, row-major.
  o, x = 0.0, -100.0
  expected = np.array([
      [[o, o, o, o], [o, o, o, o], [o, o, o, o], [o, o, o, o]],   # ids 0 0 0 0
      [[o, x, o, x], [x, o, x, o], [o, x, o, x], [x, o, x, o]],   # ids 1 2 1 2
      [[o, o, x, x], [o, o, x, x], [x, x, o, o], [x, x, o, o]],   # ids 3 3 6 6
      [[o, x, x, x], [x, o, x, x], [x, x, o, x], [x, x, x, o]],   # ids 4 5 7 8
  ])
  np.testing.assert_array_equal(swin.shifted_window_mask(4, 4, 2, 1), expected)


@pytest.mark.parametrize('height,width,window', [(8, 8, 4), (12, 6, 3), (14, 21, 7)])
def test_shifted_window_mask_separates_wrapped_tokens(height, width, window):
  # After roll(-s), token (h, w) came from ((h+s) mod H, (w+s) mod W); two tokens
  # of one window may attend iff they wrapped around the same way on both axes.
  shift = window // 2
  mask = swin.shifted_window_mask(height, width, window, shift)
  hh, ww = np.meshgrid(np.arange(height), np.arange(width), indexing='ij')
  wrap = (hh >= height - shift) * 2 + (ww >= width - shift)
  wrap = swin.window_partition(wrap[None, :, :, None], window)[..., 0]  # [nW, M²]
  expected = np.where(wrap[:, :, None] != wrap[:, None, :], -100.0, 0.0)
  np.testing.assert_array_equal(mask, expected)


def test_small_stage_rule():
  assert swin.window_and_shift((56, 56), 7) == (7, 3)
  assert swin.window_and_shift((8, 8), 7) == (7, 3)
  assert swin.window_and_shift((7, 7), 7) == (7, 0)  # stage 4 at 224/7
  assert swin.window_and_shift((5, 9), 7) == (5, 0)
  assert swin.window_and_shift((12, 12), 12) == (12, 0)


def _layer_norm(x, p):
  mu = x.mean(-1, keepdims=True)
  var = ((x - mu) ** 2).mean(-1, keepdims=True)
  return (x - mu) / np.sqrt(var + 1e-5) * p['scale'] + p['bias']


def test_shifted_block_on_stage_smaller_than_window_is_full_attention():
  # A 3×3 stage with window 7: one 3×3 window, no shift, bias rows of |d| < 3 of
  # the 13×13 table. Reference written out in numpy.
  heads, dim, m = 2, 8, 7
  block = swin.SwinBlock(num_heads=heads, window_size=m)
  x = np.random.RandomState(1).randn(2, 3, 3, dim).astype(np.float32)
  shapes = jax.eval_shape(block.init, jax.random.PRNGKey(0), jnp.asarray(x), (0.0, True))
  rng = np.random.RandomState(2)
  params = {k: rng.randn(*p.shape).astype(np.float32) for k, p in _flat(shapes['params']).items()}
  out, _ = jax.jit(block.apply, static_argnums=2)(
      {'params': flax.traverse_util.unflatten_dict(params, sep='/')}, jnp.asarray(x), (0.0, True))

  p = flax.traverse_util.unflatten_dict(params, sep='/')
  t = x.reshape(2, 9, dim)
  y = _layer_norm(t, p['norm1'])
  qkv = (y @ p['attn']['qkv']['kernel'] + p['attn']['qkv']['bias']).reshape(2, 9, 3, heads, 4)
  q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
  # pairwise offsets of a 3×3 window into the 13×13 table
  pos = np.stack(np.meshgrid(np.arange(3), np.arange(3), indexing='ij'), -1).reshape(9, 2)
  dy = pos[:, None, 0] - pos[None, :, 0]
  dx = pos[:, None, 1] - pos[None, :, 1]
  bias = p['attn']['relative_position_bias_table'][(dy + 6) * 13 + (dx + 6)]  # [9, 9, heads]
  scores = np.einsum('bqhd,bkhd->bhqk', q, k) / 2.0 + bias.transpose(2, 0, 1)[None]
  attn = scipy.special.softmax(scores, axis=-1)
  o = np.einsum('bhqk,bkhd->bqhd', attn, v).reshape(2, 9, dim)
  t = t + o @ p['attn']['proj']['kernel'] + p['attn']['proj']['bias']
  y = _layer_norm(t, p['norm2'])
  h = y @ p['mlp']['fc1']['kernel'] + p['mlp']['fc1']['bias']
  h = 0.5 * h * (1 + scipy.special.erf(h / np.sqrt(2)))
  t = t + h @ p['mlp']['fc2']['kernel'] + p['mlp']['fc2']['bias']
  np.testing.assert_allclose(np.asarray(out), t.reshape(2, 3, 3, dim), atol=2e-5, rtol=1e-5)


def test_patch_merging_order_and_odd_padding():
  # Identity-like LN (scale 1, bias 0) on a map whose channels encode positions.
  merge = swin.PatchMerging()
  x = jnp.arange(3 * 3, dtype=jnp.float32).reshape(1, 3, 3, 1)
  variables = merge.init(jax.random.PRNGKey(0), x)
  bound = merge.bind(variables)
  captured = {}

  def norm_input(next_fun, args, kwargs, context):
    if context.method_name == '__call__' and context.module.name == 'norm':
      captured['x'] = np.asarray(args[0])
    return next_fun(*args, **kwargs)

  with flax.linen.intercept_methods(norm_input):
    y = bound(x)  # eager, but only a handful of ops
  # padded to 4×4 with zeros; 2×2 neighbourhood (r, c) → [x[2r,2c], x[2r+1,2c], x[2r,2c+1], x[2r+1,2c+1]]
  g = np.pad(np.arange(9.0).reshape(3, 3), ((0, 1), (0, 1)))
  expected = np.stack([g[0::2, 0::2], g[1::2, 0::2], g[0::2, 1::2], g[1::2, 1::2]], -1)
  np.testing.assert_array_equal(captured['x'][0], expected)
  assert y.shape == (1, 2, 2, 2)
  assert 'bias' not in variables['params']['reduction']


# --------------------------------------------------------------------------
# Parity with HuggingFace transformers.


def test_hf_parity_window_not_dividing_size(small_hf, small_loaded, kernel_mode):
  _, _, _, x, ref = small_hf
  module, variables = small_loaded
  assert module.num_classes == SMALL_CLASSES
  out = np.asarray(jax.jit(lambda v, x: module.apply(v, x))(variables, jnp.asarray(x)))
  assert np.abs(ref).max() > 0.5  # unit-scale logits, so 1e-4 is a real bound
  np.testing.assert_allclose(out, ref, atol=1e-4, rtol=0)


def test_scan_blocks_loads_hf_and_matches_unrolled_logits_and_gradients(small_hf, small_loaded):
  """Shifted and plain blocks share one scanned body (traced shift flag): same numbers."""
  _, _, path, x, ref = small_hf
  module, variables = small_loaded
  scanned, stacked = vision.load_pretrained('swin_tiny_patch4_window7_224', path, **SMALL,
                                            scan_blocks=True)
  depth = SMALL['depths'][0]
  assert stacked['params']['layers_0_blocks']['attn']['qkv']['kernel'].shape[0] == depth
  x = jnp.asarray(x)
  out = np.asarray(jax.jit(lambda v, x: scanned.apply(v, x))(stacked, x))
  np.testing.assert_allclose(out, ref, atol=1e-4, rtol=0)
  np.testing.assert_allclose(out, np.asarray(module.apply(variables, x)), atol=1e-5, rtol=0)
  loss = lambda m: jax.jit(jax.grad(lambda p: m.apply({'params': p}, x).sum()))  # noqa: E731
  g_unrolled, g_scanned = loss(module)(variables['params']), loss(scanned)(stacked['params'])
  for j in range(depth):  # block 1 is the shifted one
    np.testing.assert_allclose(
        g_scanned['layers_0_blocks']['attn']['relative_position_bias_table'][j],
        g_unrolled[f'layers_0_blocks_{j}']['attn']['relative_position_bias_table'],
        atol=1e-5, rtol=0)
  remat = vision.create_model('swin_tiny_patch4_window7_224', **SMALL, scan_blocks=True,
                              remat=True, num_classes=SMALL_CLASSES)
  np.testing.assert_allclose(np.asarray(jax.jit(lambda v, x: remat.apply(v, x))(stacked, x)),
                             out, atol=1e-6, rtol=0)


def test_hf_parity_four_stages_last_stage_equals_window(tmp_path):
  # 32 px / patch 2 → 16, 8, 4, 2 tokens a side with window 2: the last stage is
  # exactly one window, so its odd block is not shifted.
  cfg = dict(img_size=32, patch_size=2, embed_dim=8, depths=(2, 2, 2, 2),
             num_heads=(1, 1, 2, 2), window_size=2)
  model = SwinForImageClassification(_hf_config(**cfg, num_labels=5)).eval()
  _randomize(model, 1)
  path = str(tmp_path / 'four.safetensors')
  save_numpy(_state_dict(model), path)
  x = np.random.RandomState(1).randn(2, 32, 32, 3).astype(np.float32)
  with torch.no_grad():
    ref = model(_nchw(x)).logits.numpy()
  module, variables = vision.load_pretrained('swin_tiny_patch4_window7_224', path, **cfg)
  out = np.asarray(jax.jit(module.apply)(variables, jnp.asarray(x)))
  np.testing.assert_allclose(out, ref, atol=1e-4, rtol=0)


def test_hf_parity_full_size_swin_tiny(tmp_path):
  torch.manual_seed(0)
  model = SwinForImageClassification(_hf_config(
      224, 4, 96, (2, 2, 6, 2), (3, 6, 12, 24), 7, num_labels=1000)).eval()
  _randomize(model, 2)
  path = str(tmp_path / 'tiny.safetensors')
  save_file({k: v.contiguous() for k, v in model.state_dict().items()}, path)
  x = np.random.RandomState(2).randn(1, 224, 224, 3).astype(np.float32)
  with torch.no_grad():
    ref = model(_nchw(x)).logits.numpy()
  module, variables = vision.load_pretrained('swin_tiny_patch4_window7_224', path)
  assert vision.param_count(variables) == EXPECTED_PARAMS['swin_tiny_patch4_window7_224']
  out = np.asarray(jax.jit(lambda v, x: module.apply(v, x))(variables, jnp.asarray(x)))
  assert np.abs(ref).max() > 0.5
  np.testing.assert_allclose(out, ref, atol=1e-4, rtol=0)


def test_features_only_matches_hf_backbone(small_hf, small_loaded):
  model, sd, _, x, _ = small_hf
  module, variables = small_loaded
  backbone = SwinBackbone(_hf_config(
      **SMALL, out_features=['stage1', 'stage2', 'stage3'])).eval()
  _randomize(backbone, 3)
  missing, _ = backbone.load_state_dict(
      {k: torch.from_numpy(v) for k, v in sd.items() if k.startswith('swin.')}, strict=False)
  assert all(k.startswith('hidden_states_norms') for k in missing)
  with torch.no_grad():
    ref = [f.permute(0, 2, 3, 1).numpy() for f in backbone(_nchw(x)).feature_maps]
  # the per-stage norms come through the converter's SwinBackbone naming
  extra = swin_weights.to_flax(
      {k: v for k, v in _state_dict(backbone).items() if k.startswith('hidden_states_norms')},
      'hf')['params']
  params = {**flax.core.unfreeze(variables['params']), **extra}
  feats = jax.jit(functools.partial(module.apply, features_only=True))(
      {'params': params}, jnp.asarray(x))
  assert [f.shape for f in feats] == [(2, 13, 13, 16), (2, 7, 7, 32), (2, 4, 4, 64)]
  for ours, theirs in zip(feats, ref):
    np.testing.assert_allclose(np.asarray(ours), theirs, atol=1e-4, rtol=0)


# --------------------------------------------------------------------------
# Weight import: namings, other image sizes, misfit checkpoints.


def _timm_keys(sd: dict[str, np.ndarray], new_layout: bool) -> dict[str, np.ndarray]:
  """HF → timm names (timm ≥ 0.9 when new_layout, else timm < 0.9 / Microsoft)."""
  out = {}
  for k, v in sd.items():
    k = k.replace('swin.', '', 1)
    k = (k.replace('embeddings.patch_embeddings.projection', 'patch_embed.proj')
         .replace('embeddings.norm', 'patch_embed.norm').replace('encoder.layers', 'layers')
         .replace('layernorm_before', 'norm1').replace('layernorm_after', 'norm2')
         .replace('attention.o_proj', 'attn.proj')
         .replace('attention.relative_position_bias.relative_position_bias_table',
                  'attn.relative_position_bias_table'))
    if k.startswith('layernorm.'):
      k = 'norm.' + k.split('.')[1]
    if k.startswith('classifier.'):
      k = ('head.fc.' if new_layout else 'head.') + k.split('.')[1]
    if new_layout and '.downsample.' in k:
      i = int(k.split('.')[1])
      k = k.replace(f'layers.{i}.', f'layers.{i + 1}.', 1)
    out[k] = v
  for k in [k for k in out if '.attention.q_proj.' in k]:
    qkv = np.concatenate([out.pop(k), out.pop(k.replace('q_proj', 'k_proj')),
                          out.pop(k.replace('q_proj', 'v_proj'))], axis=0)
    out[k.replace('attention.q_proj', 'attn.qkv')] = qkv
  for k in [k for k in out if k.endswith('relative_position_bias_table')]:
    out[k.replace('_bias_table', '_index')] = swin.relative_position_index(3).astype(np.int64)
  return out


def _hf_legacy_keys(sd: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
  """transformers 4.x names, as in the checkpoints on the Hub."""
  out = {}
  for k, v in sd.items():
    k = (k.replace('attention.q_proj', 'attention.self.query')
         .replace('attention.k_proj', 'attention.self.key')
         .replace('attention.v_proj', 'attention.self.value')
         .replace('attention.relative_position_bias.', 'attention.self.')
         .replace('attention.o_proj', 'attention.output.dense')
         .replace('mlp.fc1', 'intermediate.dense').replace('mlp.fc2', 'output.dense'))
    out[k] = v
  return out


@pytest.mark.parametrize('naming', ['timm', 'original', 'hf_legacy'])
def test_other_namings_load_identically(small_hf, small_loaded, tmp_path, naming):
  _, sd, _, _, _ = small_hf
  _, reference = small_loaded
  tensors = {'timm': lambda: _timm_keys(sd, True), 'original': lambda: _timm_keys(sd, False),
             'hf_legacy': lambda: _hf_legacy_keys(sd)}[naming]()
  assert swin_weights.detect(tensors) == ('hf' if naming == 'hf_legacy' else naming)
  path = str(tmp_path / f'{naming}.safetensors')
  save_numpy(tensors, path)
  _, variables = vision.load_pretrained('swin_tiny_patch4_window7_224', path, **SMALL)
  got, want = _flat(variables), _flat(reference)
  assert set(got) == set(want)
  for k in want:
    np.testing.assert_array_equal(np.asarray(got[k]), np.asarray(want[k]), err_msg=k)


@pytest.mark.parametrize('img_size', [34, 14])
def test_other_img_size_keeps_relative_tables(small_hf, img_size):
  # 34 px: stages 17, 9, 5 (still windowed); 14 px: stages 7, 4, 2 (the last one is
  # smaller than the window and reads the centre of its 5×5 table).
  _, sd, path, _, _ = small_hf
  module, variables = vision.load_pretrained(
      'swin_tiny_patch4_window7_224', path, **{**SMALL, 'img_size': img_size})
  params = variables['params']
  key = 'swin.encoder.layers.{}.blocks.{}.attention.relative_position_bias.relative_position_bias_table'
  for i in range(3):
    for j in range(2):
      np.testing.assert_array_equal(
          np.asarray(params[f'layers_{i}_blocks_{j}']['attn']['relative_position_bias_table']),
          sd[key.format(i, j)])
  x = jnp.asarray(np.random.RandomState(3).randn(1, img_size, img_size, 3), jnp.float32)
  if img_size == 34:
    out = jax.eval_shape(module.apply, variables, x)
  else:  # run the small-stage case
    out = jax.jit(module.apply)(variables, x)
    assert bool(jnp.all(jnp.isfinite(out)))
  assert out.shape == (1, SMALL_CLASSES)


def test_misfit_checkpoint_lists_keys(small_hf):
  _, _, path, _, _ = small_hf
  with pytest.raises(ValueError, match=r'(?s)missing.*layers_2_blocks_2.*mis-shaped.*layers_0'):
    vision.load_pretrained('swin_tiny_patch4_window7_224', path,
                           **{**SMALL, 'depths': (2, 2, 4), 'num_heads': (2, 2, 4)})


def test_detect_rejects_other_families():
  assert swin_weights.detect({'vit.embeddings.patch_embeddings.projection.weight': np.zeros(1),
                              'vit.encoder.layer.0.attention.attention.query.weight':
                                  np.zeros(1)}) is None
  assert swin_weights.detect({'patch_embed.proj.weight': np.zeros(1),
                              'blocks.0.attn.qkv.weight': np.zeros(1)}) is None


# --------------------------------------------------------------------------
# Shapes, bad input, jit/grad, train/eval.

TINY = dict(img_size=64, patch_size=4, embed_dim=8, depths=(2, 2, 2, 2), num_heads=(1, 2, 2, 4),
            window_size=2, num_classes=3)


def test_features_only_pyramid_strides_4_8_16_32():
  module = vision.create_model('swin_tiny_patch4_window7_224', **TINY)
  x = jnp.ones((2, 64, 64, 3))
  shapes = jax.eval_shape(lambda: module.init_with_output(
      jax.random.PRNGKey(0), x, features_only=True))
  feats, variables = shapes
  assert [f.shape for f in feats] == [(2, 16, 16, 8), (2, 8, 8, 16), (2, 4, 4, 32), (2, 2, 2, 64)]
  assert module.feature_strides == (4, 8, 16, 32) and module.stage_dims == (8, 16, 32, 64)
  assert {f'feature_norms_{i}' for i in range(4)} <= set(variables['params'])
  assert 'head' not in variables['params'] and 'norm' not in variables['params']


@pytest.mark.parametrize('overrides,match', [
    (dict(num_heads=(3, 6, 12, 25)), r'num_heads\[3\]=25'),
    (dict(embed_dim=100), r'num_heads\[0\]=3 does not divide .*100'),
    (dict(img_size=226), r'img_size=226 is not tiled by patch_size=4'),
    (dict(num_heads=(3, 6, 12)), r'one entry per stage'),
    (dict(window_size=0), r'window_size=0'),
    (dict(drop_path_rate=1.0), r'drop_path_rate=1.0'),
])
def test_impossible_configs_raise(overrides, match):
  with pytest.raises(ValueError, match=match):
    vision.create_model('swin_tiny_patch4_window7_224', **overrides)


def test_misfit_images_raise_before_compiling():
  module = vision.create_model('swin_tiny_patch4_window7_224', **TINY)
  for shape in [(1, 60, 64, 3), (1, 64, 64, 1), (64, 64, 3)]:
    with pytest.raises(ValueError, match=r'\[batch, 64, 64, 3\]'):
      jax.eval_shape(lambda: module.init(jax.random.PRNGKey(0), jnp.zeros(shape)))


# Two stages (8×8 tokens: a plain and a shifted block; merge; 4×4 tokens: one
# block), window 2: every kind of layer in three blocks keeps the compiles short.
GRAD = dict(img_size=32, patch_size=4, embed_dim=8, depths=(2, 1), num_heads=(1, 2),
            window_size=2, num_classes=3)


@pytest.fixture(scope='module')
def tiny_variables():
  module = vision.create_model('swin_tiny_patch4_window7_224', **GRAD)
  return jax.jit(module.init)(jax.random.PRNGKey(0), jnp.zeros((1, 32, 32, 3)))


def test_jit_grad_remat_and_bfloat16(tiny_variables):
  x = jax.random.normal(jax.random.PRNGKey(1), (2, 32, 32, 3))
  labels = jnp.array([0, 2])
  grads = {}
  for remat in (False, True):  # nn.remat keeps the parameter tree
    module = vision.create_model('swin_tiny_patch4_window7_224', **GRAD, remat=remat)

    def loss_fn(params, module=module):
      logits = module.apply({'params': params}, x)
      return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), labels[:, None], 1))

    loss, grads[remat] = jax.jit(jax.value_and_grad(loss_fn))(tiny_variables['params'])
    assert np.isfinite(float(loss))
  flat = _flat(grads[False])
  assert set(flat) == set(_flat(tiny_variables['params']))
  assert all(bool(jnp.all(jnp.isfinite(g))) for g in flat.values())
  tables = [g for k, g in flat.items() if k.endswith('relative_position_bias_table')]
  assert len(tables) == 3 and all(float(jnp.abs(g).max()) > 0 for g in tables)
  for k, g in _flat(grads[True]).items():
    np.testing.assert_allclose(np.asarray(g), np.asarray(flat[k]), atol=1e-6, rtol=1e-4)

  module = vision.create_model('swin_tiny_patch4_window7_224', **GRAD, dtype=jnp.bfloat16)
  out = jax.jit(module.apply)(tiny_variables, x)
  assert out.dtype == jnp.float32 and bool(jnp.all(jnp.isfinite(out)))  # float32 logits


def test_train_mode_dropout_and_drop_path(tiny_variables):
  x = jax.random.normal(jax.random.PRNGKey(1), (4, 32, 32, 3))
  dropout = vision.create_model('swin_tiny_patch4_window7_224', **GRAD, drop_rate=0.3)
  drop_path = vision.create_model('swin_tiny_patch4_window7_224', **GRAD, drop_path_rate=0.5)

  @jax.jit
  def apply(v, x, rng):
    return (dropout.apply(v, x, train=False),
            dropout.apply(v, x, train=True, rngs={'dropout': rng}),
            drop_path.apply(v, x, train=True, rngs={'dropout': rng}))

  eval_a, *train_a = apply(tiny_variables, x, jax.random.PRNGKey(2))
  eval_b, *train_b = apply(tiny_variables, x, jax.random.PRNGKey(2))
  _, *train_c = apply(tiny_variables, x, jax.random.PRNGKey(3))
  np.testing.assert_array_equal(np.asarray(eval_a), np.asarray(eval_b))
  for a, b, c in zip(train_a, train_b, train_c):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))  # same rng, same draw
    assert float(jnp.abs(a - eval_a).max()) > 1e-3
    assert float(jnp.abs(a - c).max()) > 1e-3
  with pytest.raises(Exception, match='dropout'):
    jax.eval_shape(lambda: dropout.apply(tiny_variables, x, train=True))


# --------------------------------------------------------------------------
# Cost: GMACs and the linear-cost claim of window attention.


def test_swin_tiny_gmacs_match_paper():
  info = vision.summary('swin_tiny_patch4_window7_224')
  assert info['params'] == EXPECTED_PARAMS['swin_tiny_patch4_window7_224']
  assert info['gmacs'] == pytest.approx(4.5, rel=0.05)


def _quadratic_fit(sizes, gmacs):
  """(c, a, b) with gmacs = c + a·A + b·A², A = size² (exact through 3 points)."""
  areas = np.array([s * s for s in sizes], np.float64)
  return np.linalg.solve(np.stack([np.ones(3), areas, areas ** 2], 1), np.array(gmacs))


def test_attention_cost_linear_in_area_for_swin_quadratic_for_vit():
  # Fit c + a·A + b·A² to XLA's forward cost at three image sizes (area ×1, ×4, ×16).
  sizes = (64, 128, 256)
  # Swin: every stage larger than and a multiple of the window at all three sizes,
  # so the whole network (window attention included) costs the same per pixel.
  cfg = dict(patch_size=4, embed_dim=16, depths=(2, 2), num_heads=(1, 2), window_size=4,
             num_classes=2)
  swin_g = [vision.summary('swin_tiny_patch4_window7_224', img_size=s, **cfg)['gmacs']
            for s in sizes]
  np.testing.assert_allclose([g / s ** 2 for g, s in zip(swin_g, sizes)],
                             swin_g[0] / sizes[0] ** 2, rtol=0.01)
  _, _, b = _quadratic_fit(sizes, swin_g)
  assert abs(b) * sizes[-1] ** 4 < 0.01 * swin_g[-1]

  # ViT (one block, D=32, /16 patches: N = 16, 64, 256 tokens): global attention
  # adds QKᵀ and AV, 2·N²·D multiply-accumulates, quadratic in the area.
  dim = 32
  vit_g = [vision.summary('vit_tiny_patch16_224', img_size=s, embed_dim=dim, depth=1,
                          num_heads=2, num_classes=2)['gmacs'] for s in sizes]
  _, _, b = _quadratic_fit(sizes, vit_g)
  tokens = (sizes[-1] // 16) ** 2
  quadratic = b * sizes[-1] ** 4 * 1e9
  assert quadratic == pytest.approx(2 * tokens ** 2 * dim, rel=0.15)  # softmax adds a little
  assert quadratic > 0.25 * vit_g[-1] * 1e9  # the rest: patch embedding, MLP, head
  assert vit_g[-1] / sizes[-1] ** 2 > 1.25 * vit_g[0] / sizes[0] ** 2  # measured 1.35
