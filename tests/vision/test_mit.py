"""MiT (SegFormer encoder) classifiers: counts, HF parity, namings, pyramid, train.

Parity oracle: HuggingFace `SegformerForImageClassification` (PyTorch, CPU,
eval mode) with random weights, saved to safetensors and loaded back through
`vision.load_pretrained`.
"""
import re

import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from safetensors.numpy import save_file
from transformers import SegformerConfig
from transformers import SegformerForImageClassification

import vision
from tests.vision.test_pvt import flat
from tests.vision.test_pvt import images
from tests.vision.test_pvt import nchw
from tests.vision.test_pvt import randomize
from tests.vision.test_pvt import state_dict
from vision import mit
from vision.weights import segformer as seg_weights

# Exact counts with a 1000-class head: B0, B2 from docs/references.md, the others the
# numel of HF SegformerForImageClassification with the same config.
EXPECTED_PARAMS = {
    'mit_b0': 3_576_392,
    'mit_b1': 13_664_424,
    'mit_b2': 24_709_288,
    'mit_b3': 44_585_128,
    'mit_b4': 61_355_688,
    'mit_b5': 81_956_008,
}

SMALL = dict(embed_dims=(16, 32, 40, 64), depths=(1, 2, 1, 1))
SMALL_CLASSES = 7
# Not square, not a multiple of 32: stage grids 18×10, 9×5, 5×3, 3×2.
SIZE = (72, 40)


def hf_segformer_config(embed_dims=(32, 64, 160, 256), depths=(2, 2, 2, 2), **kw):
  return SegformerConfig(hidden_sizes=list(embed_dims), depths=list(depths), **kw)


def legacy_hf_names(tensors):
  """transformers 5 names → the older names of the published hub checkpoints."""
  rules = ((r'stages\.(\d+)\.patch_embeddings\.', r'encoder.patch_embeddings.\1.'),
           (r'stages\.(\d+)\.blocks\.', r'encoder.block.\1.'),
           (r'stages\.(\d+)\.layer_norm\.', r'encoder.layer_norm.\1.'),
           (r'attention\.q_proj', 'attention.self.query'),
           (r'attention\.k_proj', 'attention.self.key'),
           (r'attention\.v_proj', 'attention.self.value'),
           (r'attention\.sequence_reduction\.sequence_reduction', 'attention.self.sr'),
           (r'attention\.sequence_reduction\.layer_norm', 'attention.self.layer_norm'),
           (r'attention\.o_proj', 'attention.output.dense'),
           (r'mlp\.fc1', 'mlp.dense1'), (r'mlp\.fc2', 'mlp.dense2'),
           (r'layernorm_before', 'layer_norm_1'), (r'layernorm_after', 'layer_norm_2'),
           (r'decode_head\.linear_projections\.', 'decode_head.linear_c.'))
  out = {}
  for k, v in tensors.items():
    for a, b in rules:
      k = re.sub(a, b, k)
    out[k] = v
  return out


def original_names(tensors, prefix=''):
  """HF names → the authors' (MiT classifier; `prefix='backbone.'`: mmseg)."""
  out = {}
  for k, v in tensors.items():
    m = re.match(r'segformer\.stages\.(\d+)\.(.*)$', k)
    if m is None:
      if k.startswith('classifier.'):
        out['head.' + k.split('.')[-1]] = v
      continue
    i, rest = int(m.group(1)) + 1, m.group(2)
    if rest.startswith('patch_embeddings.'):
      rest = rest.replace('patch_embeddings.', f'patch_embed{i}.').replace('layer_norm', 'norm')
    elif rest.startswith('layer_norm.'):
      rest = rest.replace('layer_norm.', f'norm{i}.')
    else:
      if '.k_proj.' in rest or '.v_proj.' in rest:
        continue
      mb = re.match(r'blocks\.(\d+)\.(.*)$', rest)
      j, tail = mb.group(1), mb.group(2)
      if tail.startswith('attention.q_proj.'):
        leaf = tail.split('.')[-1]
        base = f'segformer.stages.{i - 1}.blocks.{j}.attention'
        out[f'{prefix}block{i}.{j}.attn.kv.{leaf}'] = np.concatenate(
            [tensors[f'{base}.k_proj.{leaf}'], tensors[f'{base}.v_proj.{leaf}']])
      for a, b in (('layernorm_before', 'norm1'), ('layernorm_after', 'norm2'),
                   ('attention.q_proj', 'attn.q'),
                   ('attention.sequence_reduction.sequence_reduction', 'attn.sr'),
                   ('attention.sequence_reduction.layer_norm', 'attn.norm'),
                   ('attention.o_proj', 'attn.proj')):
        tail = tail.replace(a, b)
      rest = f'block{i}.{j}.{tail}'
    out[prefix + rest] = v
  return out


@pytest.fixture(scope='module')
def small_hf(tmp_path_factory):
  """(state dict, checkpoint path, NHWC images, HF output) for SMALL."""
  torch.manual_seed(0)
  model = SegformerForImageClassification(
      hf_segformer_config(**SMALL, num_labels=SMALL_CLASSES)).eval()
  randomize(model, 0)
  tensors = state_dict(model)
  path = str(tmp_path_factory.mktemp('mit') / 'small.safetensors')
  save_file(tensors, path)
  x = images((2, *SIZE, 3))
  with torch.no_grad():
    out = model(nchw(x), output_hidden_states=True)
  return tensors, path, x, out


@pytest.fixture(scope='module')
def small_loaded(small_hf):
  """(module, variables, logits, features) loaded from the HF checkpoint."""
  _, path, x, _ = small_hf
  module, variables = vision.load_pretrained('mit_b0', path, **SMALL, **seg_weights.HF_OVERRIDES)
  logits, feats = jax.jit(lambda v, x: (module.apply(v, x), module.apply(v, x, features_only=True)))(
      variables, x)
  return module, variables, logits, feats


@pytest.mark.parametrize('name', sorted(EXPECTED_PARAMS))
def test_param_count(name):
  module = vision.create_model(name)
  shapes = jax.eval_shape(
      lambda: module.init(jax.random.PRNGKey(0), jnp.zeros((1, 224, 224, 3)), train=False))
  assert vision.param_count(shapes) == EXPECTED_PARAMS[name]


def test_hf_parity_small_any_size(small_hf, small_loaded, kernel_mode):
  _, _, x, out = small_hf
  module, variables, _, _ = small_loaded
  logits = jax.jit(lambda v, x: module.apply(v, x))(variables, x)
  assert module.num_classes == SMALL_CLASSES and logits.shape == (2, SMALL_CLASSES)
  ref = out.logits.numpy()
  assert np.abs(ref).max() > 1.0
  np.testing.assert_allclose(np.asarray(logits), ref, atol=1e-4, rtol=0)


def test_scan_blocks_matches_unrolled_logits_and_gradients(small_hf, small_loaded):
  _, path, x, out = small_hf
  module, variables, logits, _ = small_loaded
  scanned, stacked = vision.load_pretrained('mit_b0', path, **SMALL, scan_blocks=True,
                                            **seg_weights.HF_OVERRIDES)
  assert stacked['params']['block2']['attn']['kv']['kernel'].shape == (2, 32, 64)
  np.testing.assert_allclose(np.asarray(jax.jit(scanned.apply)(stacked, x)),
                             np.asarray(logits), atol=1e-5, rtol=0)
  loss = lambda m: jax.jit(jax.grad(lambda p: m.apply({'params': p}, x).sum()))  # noqa: E731
  g_unrolled, g_scanned = loss(module)(variables['params']), loss(scanned)(stacked['params'])
  np.testing.assert_allclose(g_scanned['block2']['mlp']['dwconv']['kernel'][0],
                             g_unrolled['block2_0']['mlp']['dwconv']['kernel'], atol=1e-5)


def test_features_only_are_hf_stage_outputs(small_hf, small_loaded):
  _, _, _, out = small_hf
  _, _, _, feats = small_loaded
  grids = [(18, 10), (9, 5), (5, 3), (3, 2)]
  assert [f.shape for f in feats] == [(2, *g, c) for g, c in zip(grids, SMALL['embed_dims'])]
  for f, ref in zip(feats, out.hidden_states):
    np.testing.assert_allclose(np.asarray(f), ref.numpy().transpose(0, 2, 3, 1), atol=1e-4,
                               rtol=0)


def test_hf_parity_full_mit_b0(tmp_path):
  torch.manual_seed(1)
  model = SegformerForImageClassification(hf_segformer_config(num_labels=1000)).eval()
  randomize(model, 1)
  path = str(tmp_path / 'mit_b0.safetensors')
  save_file(state_dict(model), path)
  x = images((1, 64, 64, 3), seed=1)
  with torch.no_grad():
    ref = model(nchw(x)).logits.numpy()
  module, variables = vision.load_pretrained('mit_b0', path)  # HF eps from default_overrides
  logits = jax.jit(lambda v, x: module.apply(v, x))(variables, x)
  np.testing.assert_allclose(np.asarray(logits), ref, atol=1e-4, rtol=0)


@pytest.mark.parametrize('naming', ['legacy_hf', 'original'])
def test_other_namings_give_the_same_variables(small_hf, small_loaded, tmp_path, naming):
  tensors = small_hf[0]
  converted = legacy_hf_names(tensors) if naming == 'legacy_hf' else original_names(tensors)
  assert set(converted) != set(tensors)
  assert seg_weights.detect(converted) == ('hf' if naming == 'legacy_hf' else 'original')
  path = str(tmp_path / 'w.safetensors')
  save_file(converted, path)
  _, variables = vision.load_pretrained('mit_b0', path, **SMALL)
  expected, got = flat(small_loaded[1]), flat(variables)
  assert got.keys() == expected.keys()
  for key, value in expected.items():
    np.testing.assert_array_equal(np.asarray(got[key]), np.asarray(value), err_msg=key)


def test_train_mode_jit_grad(small_hf):
  _, path, x, _ = small_hf
  module, variables = vision.load_pretrained('mit_b0', path, **SMALL, drop_path_rate=0.2,
                                             drop_rate=0.1)

  @jax.jit
  def loss_and_grad(params, key):
    def loss(p):
      logits = module.apply({'params': p}, x, train=True, rngs={'dropout': key})
      return jnp.mean(logits ** 2)
    return jax.value_and_grad(loss)(params)

  l1, g1 = loss_and_grad(variables['params'], jax.random.PRNGKey(1))
  l1b, _ = loss_and_grad(variables['params'], jax.random.PRNGKey(1))
  l2, _ = loss_and_grad(variables['params'], jax.random.PRNGKey(2))
  assert float(l1) == float(l1b) and float(l1) != float(l2)
  grads = flat(g1)
  assert all(np.isfinite(np.asarray(g)).all() for g in grads.values())
  # block1_0 has drop-path rate 0; later blocks may be dropped for the whole batch
  for key in ('patch_embed1/proj/kernel', 'block1_0/attn/sr/kernel', 'block1_0/attn/kv/kernel',
              'block1_0/mlp/dwconv/kernel', 'norm4/scale', 'head/kernel'):
    assert np.abs(np.asarray(grads[key])).max() > 0, key
  nonzero = [np.abs(np.asarray(g)).max() > 0 for g in grads.values()]
  assert np.mean(nonzero) > 0.7


def test_registered_defaults_and_dwconv_layout():
  module = vision.create_model('mit_b2')
  assert isinstance(module, mit.MixTransformer)
  assert tuple(module.embed_dims) == (64, 128, 320, 512) and tuple(module.depths) == (3, 4, 6, 3)
  assert tuple(module.mlp_ratios) == (4, 4, 4, 4) and (module.norm_eps, module.embed_norm_eps) == (
      1e-6, 1e-5)
  shapes = jax.eval_shape(lambda: module.init(jax.random.PRNGKey(0), jnp.zeros((1, 64, 64, 3))))
  p = flat(shapes['params'])
  assert p['block1_0/mlp/dwconv/kernel'].shape == (3, 3, 1, 256)
  assert p['patch_embed1/proj/kernel'].shape == (7, 7, 3, 64)
  assert p['patch_embed2/proj/kernel'].shape == (3, 3, 64, 128)
  assert p['block1_0/attn/sr/kernel'].shape == (8, 8, 64, 64)


@pytest.mark.parametrize('overrides, message', [
    (dict(num_heads=(1, 2, 5, 7)), 'num_heads'),
    (dict(sr_ratios=(8, 4, 2)), 'entries'),
    (dict(img_size=16), 'at least 32'),
    (dict(drop_rate=-0.1), 'drop_rate'),
])
def test_impossible_configs_fail_in_create_model(overrides, message):
  with pytest.raises(ValueError, match=message):
    vision.create_model('mit_b0', **overrides)


def test_bad_images_fail_before_compiling():
  module = vision.create_model('mit_b0', num_classes=3)
  variables = jax.eval_shape(lambda: module.init(jax.random.PRNGKey(0), jnp.zeros((1, 64, 64, 3))))
  for shape, message in [((1, 64, 64, 1), 'in_chans'), ((1, 24, 64, 3), 'at least 32'),
                         ((64, 64, 3), 'NHWC')]:
    with pytest.raises(ValueError, match=message):
      jax.eval_shape(lambda v, s=shape: module.apply(v, jnp.zeros(s)), variables)
  # other sizes are fine: no position embedding
  assert jax.eval_shape(lambda v: module.apply(v, jnp.zeros((2, 100, 36, 3))),
                        variables).shape == (2, 3)
