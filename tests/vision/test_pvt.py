"""PVT v1: parameter counts, HF parity, weight import, pyramid, train/eval.

Parity oracle: HuggingFace transformers `PvtForImageClassification` /
`PvtModel` (PyTorch, CPU, eval mode) with random weights, saved to
safetensors and read back through `vision.load_pretrained`.
"""
import math
import re

import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from safetensors.numpy import save_file
from transformers import PvtConfig
from transformers import PvtForImageClassification

import vision
from vision import pvt
from vision.weights import pvt as pvt_weights

# Exact counts with a 1000-class head (docs/references.md; = HF numel).
EXPECTED_PARAMS = {
    'pvt_tiny': 13_229_288,
    'pvt_small': 24_485_864,
    'pvt_medium': 44_208_104,
    'pvt_large': 61_369_320,
}

# Small config: 64 px gives stage grids 16, 8, 4, 2 (SR 8, 4, 2, 1 → 2×2 keys).
SMALL = dict(img_size=64, embed_dims=(16, 32, 48, 64), depths=(1, 2, 1, 1),
             num_heads=(1, 2, 3, 4))
SMALL_CLASSES = 7


def hf_pvt_config(img_size, embed_dims, depths, num_heads, **kw) -> PvtConfig:
  return PvtConfig(image_size=img_size, hidden_sizes=list(embed_dims), depths=list(depths),
                   num_attention_heads=list(num_heads), **kw)


def randomize(model: torch.nn.Module, seed: int) -> None:
  """Unit-scale random weights: HF's init (std 0.02, zero biases, LN at (1, 0))
  leaves too little signal for a meaningful comparison."""
  gen = torch.Generator().manual_seed(seed)
  with torch.no_grad():
    for name, p in model.named_parameters():
      noise = torch.randn(p.shape, generator=gen)
      if p.ndim == 1:  # LayerNorm / BatchNorm scale and every bias
        p.copy_((1.0 if name.endswith('weight') else 0.0) + 0.2 * noise)
      elif p.ndim == 3:  # position embeddings, class token
        p.copy_(0.5 * noise)
      else:
        p.copy_(noise / math.sqrt(p[0].numel()))


def state_dict(model: torch.nn.Module) -> dict[str, np.ndarray]:
  return {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}


def nchw(x: np.ndarray) -> torch.Tensor:
  return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))


def flat(tree) -> dict:
  return flax.traverse_util.flatten_dict(flax.core.unfreeze(tree), sep='/')


def images(shape, seed=0) -> np.ndarray:
  return np.random.RandomState(seed).randn(*shape).astype(np.float32)


@pytest.fixture(scope='module')
def small_hf(tmp_path_factory):
  """(HF model, state dict, checkpoint path, NHWC images, HF logits) for SMALL."""
  torch.manual_seed(0)
  model = PvtForImageClassification(hf_pvt_config(**SMALL, num_labels=SMALL_CLASSES)).eval()
  randomize(model, 0)
  tensors = state_dict(model)
  path = str(tmp_path_factory.mktemp('pvt') / 'small.safetensors')
  save_file(tensors, path)
  x = images((2, 64, 64, 3))
  with torch.no_grad():
    out = model(nchw(x), output_hidden_states=True)
  return model, tensors, path, x, out


@pytest.fixture(scope='module')
def small_loaded(small_hf):
  """(module, variables, logits, features) of SMALL loaded from the HF checkpoint."""
  _, _, path, x, _ = small_hf
  module, variables = vision.load_pretrained('pvt_tiny', path, **SMALL, **pvt_weights.HF_OVERRIDES)
  logits, feats = jax.jit(lambda v, x: (module.apply(v, x), module.apply(v, x, features_only=True)))(
      variables, x)
  return module, variables, logits, feats


@pytest.mark.parametrize('name', sorted(EXPECTED_PARAMS))
def test_param_count(name):
  module = vision.create_model(name)
  shapes = jax.eval_shape(
      lambda: module.init(jax.random.PRNGKey(0), jnp.zeros((1, 224, 224, 3)), train=False))
  assert vision.param_count(shapes) == EXPECTED_PARAMS[name]
  assert set(shapes) == {'params'}


def test_registered_defaults():
  module = vision.create_model('pvt_small')
  assert isinstance(module, pvt.PVT)
  assert tuple(module.depths) == (3, 4, 6, 3)
  assert tuple(module.mlp_ratios) == (8, 8, 4, 4) and tuple(module.sr_ratios) == (8, 4, 2, 1)
  assert (module.norm_eps, module.embed_norm_eps) == (1e-6, 1e-5)
  assert vision.get_model_def('pvt_small').family == 'pvt'


def test_hf_parity_small(small_hf, small_loaded, kernel_mode):
  _, _, _, x, out = small_hf
  module, variables, _, _ = small_loaded
  logits = jax.jit(lambda v, x: module.apply(v, x))(variables, x)
  ref = out.logits.numpy()
  assert logits.shape == (2, SMALL_CLASSES)
  assert np.abs(ref).max() > 1.0  # a real signal, not ~0 against ~0
  np.testing.assert_allclose(np.asarray(logits), ref, atol=1e-4, rtol=0)


def test_features_only_matches_hf_stages(small_hf, small_loaded):
  """Stages 1–3: the block outputs; stage 4: final-norm tokens without the class token."""
  _, _, _, x, out = small_hf
  module, _, _, feats = small_loaded
  ends = np.cumsum(SMALL['depths']) - 1
  grids = [16, 8, 4, 2]
  assert [f.shape for f in feats] == [(2, g, g, c) for g, c in zip(grids, SMALL['embed_dims'])]
  for i in range(3):
    ref = out.hidden_states[ends[i]].numpy().reshape(2, grids[i], grids[i], -1)
    np.testing.assert_allclose(np.asarray(feats[i]), ref, atol=1e-4, rtol=0)
  ref4 = out.hidden_states[-1].numpy()[:, 1:].reshape(2, 2, 2, -1)
  np.testing.assert_allclose(np.asarray(feats[3]), ref4, atol=1e-4, rtol=0)
  assert 'head' not in jax.eval_shape(
      lambda: module.init(jax.random.PRNGKey(0), x, features_only=True))['params']


def test_hf_parity_full_pvt_tiny(tmp_path):
  torch.manual_seed(1)
  model = PvtForImageClassification(PvtConfig()).eval()
  randomize(model, 1)
  path = str(tmp_path / 'pvt_tiny.safetensors')
  save_file(state_dict(model), path)
  x = images((1, 224, 224, 3), seed=1)
  with torch.no_grad():
    ref = model(nchw(x)).logits.numpy()
  module, variables = vision.load_pretrained('pvt_tiny', path)  # HF eps from default_overrides
  assert module.num_classes == 1000
  logits = jax.jit(lambda v, x: module.apply(v, x))(variables, x)
  np.testing.assert_allclose(np.asarray(logits), ref, atol=1e-4, rtol=0)


def _original_names(tensors):
  """HF PVT names → the authors' repository's (written out independently)."""
  out = {}
  for k, v in tensors.items():
    parts = k.split('.')
    if k.startswith('pvt.encoder.patch_embeddings.'):
      i = int(parts[3]) + 1
      rest = '.'.join(parts[4:])
      if rest == 'position_embeddings':
        out[f'pos_embed{i}'] = v
      elif rest == 'cls_token':
        out['cls_token'] = v
      else:
        rest = rest.replace('projection', 'proj').replace('layer_norm', 'norm')
        out[f'patch_embed{i}.{rest}'] = v
    elif k.startswith('pvt.encoder.block.'):
      i, j, rest = int(parts[3]) + 1, parts[4], '.'.join(parts[5:])
      if 'attention.self.key' in rest or 'attention.self.value' in rest:
        continue
      for a, b in (('layer_norm_1', 'norm1'), ('layer_norm_2', 'norm2'),
                   ('attention.self.query', 'attn.q'),
                   ('attention.self.sequence_reduction', 'attn.sr'),
                   ('attention.self.layer_norm', 'attn.norm'),
                   ('attention.output.dense', 'attn.proj'), ('mlp.dense1', 'mlp.fc1'),
                   ('mlp.dense2', 'mlp.fc2')):
        rest = rest.replace(a, b)
      out[f'block{i}.{j}.{rest}'] = v
      if rest.startswith('attn.q.'):
        leaf = rest.split('.')[-1]
        prefix = f'pvt.encoder.block.{parts[3]}.{j}.attention.self'
        out[f'block{i}.{j}.attn.kv.{leaf}'] = np.concatenate(
            [tensors[f'{prefix}.key.{leaf}'], tensors[f'{prefix}.value.{leaf}']])
    elif k.startswith('pvt.encoder.layer_norm.'):
      out['norm.' + parts[-1]] = v
    else:
      out[k.replace('classifier', 'head')] = v
  return out


def test_original_naming(small_hf, small_loaded, tmp_path):
  _, tensors, _, _, _ = small_hf
  original = _original_names(tensors)
  assert pvt_weights.detect(original) == 'original'
  assert pvt_weights.detect(tensors) == 'hf'
  path = str(tmp_path / 'original.npz')
  np.savez(path, **original)
  _, variables = vision.load_pretrained('pvt_tiny', path, **SMALL)
  expected = flat(small_loaded[1])
  got = flat(variables)
  assert got.keys() == expected.keys()
  for key, value in expected.items():
    np.testing.assert_array_equal(np.asarray(got[key]), np.asarray(value), err_msg=key)


def test_load_at_other_img_size_resizes_grid_only(small_hf):
  _, tensors, path, _, _ = small_hf
  overrides = {**SMALL, 'img_size': 96}
  module, variables = vision.load_pretrained('pvt_tiny', path, **overrides)
  params = variables['params']
  for i, g in enumerate([24, 12, 6, 3]):
    src = torch.from_numpy(tensors[f'pvt.encoder.patch_embeddings.{i}.position_embeddings'])
    if i == 3:
      cls, src = src[:, :1], src[:, 1:]
    s = int(math.isqrt(src.shape[1]))
    grid = src.reshape(1, s, s, -1).permute(0, 3, 1, 2)
    ref = torch.nn.functional.interpolate(grid, size=(g, g), mode='bilinear',
                                          align_corners=False)
    ref = ref.permute(0, 2, 3, 1).reshape(1, g * g, -1).numpy()
    got = np.asarray(params[f'pos_embed{i + 1}'])
    if i == 3:
      np.testing.assert_array_equal(got[:, :1], cls.numpy())
      got = got[:, 1:]
    assert got.shape == ref.shape
    np.testing.assert_allclose(got, ref, atol=1e-6, rtol=0)
  logits = jax.eval_shape(lambda v: module.apply(v, jnp.zeros((1, 96, 96, 3))), variables)
  assert logits.shape == (1, SMALL_CLASSES)


def test_misfit_checkpoint_lists_keys(small_hf, tmp_path):
  _, tensors, path, _, _ = small_hf
  with pytest.raises(ValueError, match='mis-shaped') as err:
    vision.load_pretrained('pvt_tiny', path)  # default widths 64…512 vs 16…64
  assert re.search(r'params/\S+/kv/kernel: checkpoint \(\d+, \d+\) vs model', str(err.value))
  broken = dict(tensors)
  del broken['pvt.encoder.block.1.0.mlp.dense1.weight']
  broken['pvt.encoder.extra.weight'] = np.zeros(3, np.float32)
  bad = str(tmp_path / 'broken.safetensors')
  save_file(broken, bad)
  with pytest.raises(ValueError, match='missing') as err:
    vision.load_pretrained('pvt_tiny', bad, **SMALL)
  assert 'block2_0/mlp/fc1/kernel' in str(err.value)
  assert 'extra' in str(err.value)


def test_scan_blocks_and_remat_load_hf_and_match(small_hf, small_loaded):
  """scan_blocks stacks each stage's blocks (block2: leading axis 2, as loaded
  from the HF checkpoint's one-by-one blocks); logits and gradients match the
  unrolled model's, with and without remat."""
  _, _, path, x, out = small_hf
  module, variables, logits, _ = small_loaded
  scanned, scanned_vars = vision.load_pretrained('pvt_tiny', path, **SMALL, scan_blocks=True,
                                                 **pvt_weights.HF_OVERRIDES)
  assert scanned_vars['params']['block2']['attn']['q']['kernel'].shape == (2, 32, 32)
  assert 'block2_0' not in scanned_vars['params']
  assert vision.param_count(scanned_vars) == vision.param_count(variables)
  np.testing.assert_allclose(np.asarray(jax.jit(scanned.apply)(scanned_vars, x)),
                             out.logits.numpy(), atol=1e-4, rtol=0)

  def grads(m, v):
    return flat(jax.jit(jax.grad(lambda p: m.apply({'params': p}, x).sum()))(v['params']))

  unrolled = grads(module, variables)
  for m in (scanned, scanned.clone(remat=True)):
    g = grads(m, scanned_vars)
    np.testing.assert_allclose(g['block2/mlp/fc1/kernel'][1],
                               unrolled['block2_1/mlp/fc1/kernel'], atol=1e-5)
    np.testing.assert_allclose(g['head/kernel'], unrolled['head/kernel'], atol=1e-5)


def test_train_mode_jit_grad(small_hf):
  """train=True: drop path draws from the 'dropout' stream (same key, same
  result; new key, new result); gradients reach every kind of parameter."""
  _, _, path, x, _ = small_hf
  module, variables = vision.load_pretrained('pvt_tiny', path, **SMALL, drop_path_rate=0.2)
  labels = jnp.arange(2)

  @jax.jit
  def loss_and_grad(params, key):
    def loss(p):
      logits = module.apply({'params': p}, x, train=True, rngs={'dropout': key})
      return -jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(2), labels])
    return jax.value_and_grad(loss)(params)

  l1, g1 = loss_and_grad(variables['params'], jax.random.PRNGKey(1))
  l1b, _ = loss_and_grad(variables['params'], jax.random.PRNGKey(1))
  losses = {float(loss_and_grad(variables['params'], jax.random.PRNGKey(k))[0])
            for k in range(2, 6)}
  assert np.isfinite(float(l1)) and float(l1) == float(l1b) and len(losses) > 1
  grads = flat(g1)
  assert all(np.isfinite(np.asarray(g)).all() for g in grads.values())
  for key in ('pos_embed1', 'cls_token', 'patch_embed1/proj/kernel', 'block1_0/attn/sr/kernel',
              'block4_0/attn/kv/kernel', 'head/kernel'):
    assert np.abs(np.asarray(grads[key])).max() > 0, key
  with pytest.raises(Exception, match='dropout'):  # train=True without the rng
    jax.eval_shape(lambda v: module.apply(v, x, train=True), variables)


def test_bfloat16_compute_keeps_float32_params():
  module = vision.create_model('pvt_tiny', **SMALL, dtype=jnp.bfloat16)
  x = jnp.zeros((1, 64, 64, 3))
  shapes = jax.eval_shape(lambda: module.init(jax.random.PRNGKey(0), x))
  assert {v.dtype for v in jax.tree.leaves(shapes)} == {jnp.dtype(jnp.float32)}
  out = jax.eval_shape(lambda v: module.apply(v, x), shapes)
  assert out.dtype == jnp.float32  # logits; the features stay in the compute dtype
  features = jax.eval_shape(lambda v: module.apply(v, x, features_only=True), shapes)
  assert {f.dtype for f in features} == {jnp.dtype(jnp.bfloat16)}


@pytest.mark.parametrize('overrides, message', [
    (dict(sr_ratios=(8, 4, 2, 2)), 'class token'),
    (dict(num_heads=(1, 2, 5, 7)), 'num_heads'),
    (dict(depths=(2, 2, 2)), 'entries'),
    (dict(img_size=16), 'sr_ratios'),
    (dict(drop_path_rate=1.0), 'drop_path_rate'),
])
def test_impossible_configs_fail_in_create_model(overrides, message):
  with pytest.raises(ValueError, match=message):
    vision.create_model('pvt_tiny', **overrides)


def test_bad_images_fail_before_compiling():
  module = vision.create_model('pvt_tiny', **SMALL)
  variables = jax.eval_shape(lambda: module.init(jax.random.PRNGKey(0), jnp.zeros((1, 64, 64, 3))))
  for shape in [(1, 96, 64, 3), (1, 64, 64, 1), (64, 64, 3)]:
    with pytest.raises(ValueError, match='expects images'):
      jax.eval_shape(lambda v, s=shape: module.apply(v, jnp.zeros(s)), variables)
