"""SegFormer: counts, HF segmentation parity (incl. BatchNorm statistics),
mmseg naming, the decoder on Swin/PVT pyramids, bilinear upsampling vs torch,
train mode.

Parity oracle: HuggingFace `SegformerForSemanticSegmentation` (PyTorch, CPU,
eval mode; logits NCHW at 1/4) with random weights and non-trivial BatchNorm
running statistics, saved to safetensors and loaded through
`vision.load_pretrained`.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from safetensors.numpy import save_file
from transformers import SegformerForSemanticSegmentation

import vision
from tests.vision.test_mit import hf_segformer_config
from tests.vision.test_mit import original_names
from tests.vision.test_pvt import flat
from tests.vision.test_pvt import images
from tests.vision.test_pvt import nchw
from tests.vision.test_pvt import randomize
from tests.vision.test_pvt import state_dict
from vision import segformer
from vision.weights import segformer as seg_weights

# Exact counts with 150 classes (BatchNorm statistics are not parameters): B0,
# B2 from docs/references.md, the others the numel of HF SegformerForSemanticSegmentation.
EXPECTED_PARAMS = {
    'segformer_b0': 3_752_694,
    'segformer_b1': 13_715_798,
    'segformer_b2': 27_461_974,
    'segformer_b3': 47_337_814,
    'segformer_b4': 64_108_374,
    'segformer_b5': 84_708_694,
}

SMALL = dict(embed_dims=(16, 32, 40, 64), depths=(1, 2, 1, 1), decoder_dim=24)
SMALL_CLASSES = 5


def _hf_model(seed, num_labels, embed_dims=(32, 64, 160, 256), depths=(2, 2, 2, 2),
              decoder_dim=256):
  torch.manual_seed(seed)
  model = SegformerForSemanticSegmentation(hf_segformer_config(
      embed_dims, depths, decoder_hidden_size=decoder_dim, num_labels=num_labels)).eval()
  randomize(model, seed)
  gen = torch.Generator().manual_seed(seed + 100)
  bn = model.decode_head.batch_norm
  with torch.no_grad():  # running statistics far from (0, 1)
    bn.running_mean.copy_(torch.randn(bn.running_mean.shape, generator=gen))
    bn.running_var.copy_(0.5 + 2 * torch.rand(bn.running_var.shape, generator=gen))
  return model


@pytest.fixture(scope='module')
def small_hf(tmp_path_factory):
  """(state dict, checkpoint path, NHWC images, HF logits NCHW) for SMALL."""
  model = _hf_model(0, SMALL_CLASSES, SMALL['embed_dims'], SMALL['depths'], SMALL['decoder_dim'])
  tensors = state_dict(model)
  path = str(tmp_path_factory.mktemp('segformer') / 'small.safetensors')
  save_file(tensors, path)
  x = images((2, 64, 48, 3))
  with torch.no_grad():
    logits = model(nchw(x)).logits.numpy()
  return tensors, path, x, logits


@pytest.mark.parametrize('name', sorted(EXPECTED_PARAMS))
def test_param_count(name):
  module = vision.create_model(name)
  shapes = jax.eval_shape(
      lambda: module.init(jax.random.PRNGKey(0), jnp.zeros((1, 64, 64, 3)), train=False))
  assert vision.param_count(shapes) == EXPECTED_PARAMS[name]
  assert set(shapes) == {'params', 'batch_stats'}
  assert vision.get_model_def(name).task == 'segmentation'


def test_hf_parity_small_with_batchnorm_stats(small_hf, kernel_mode):
  tensors, path, x, ref = small_hf
  module, variables = vision.load_pretrained('segformer_b0', path, **SMALL,
                                             **seg_weights.HF_OVERRIDES)
  stats = variables['batch_stats']['decode_head']['batch_norm']
  np.testing.assert_array_equal(np.asarray(stats['mean']),
                                tensors['decode_head.batch_norm.running_mean'])
  np.testing.assert_array_equal(np.asarray(stats['var']),
                                tensors['decode_head.batch_norm.running_var'])
  logits = jax.jit(lambda v, x: module.apply(v, x))(variables, x)
  assert logits.shape == (2, 16, 12, SMALL_CLASSES)
  assert np.abs(ref).max() > 1.0
  np.testing.assert_allclose(np.asarray(logits).transpose(0, 3, 1, 2), ref, atol=1e-4, rtol=0)


def test_scanned_rematted_encoder_loads_hf_and_matches(small_hf):
  """scan_blocks reaches the MiT encoder under 'backbone'; the checkpoint's
  one-by-one blocks are stacked (block2: two blocks) and logits still match HF."""
  _, path, x, ref = small_hf
  module, variables = vision.load_pretrained('segformer_b0', path, **SMALL, scan_blocks=True,
                                             remat=True, **seg_weights.HF_OVERRIDES)
  encoder = variables['params']['backbone']
  assert encoder['block2']['mlp']['fc1']['kernel'].shape == (2, 32, 128)
  assert not any(k.startswith('block2_') for k in encoder)
  logits = jax.jit(lambda v, x: module.apply(v, x))(variables, x)
  np.testing.assert_allclose(np.asarray(logits).transpose(0, 3, 1, 2), ref, atol=1e-4, rtol=0)


def test_hf_parity_full_segformer_b0(tmp_path):
  model = _hf_model(1, 150)
  path = str(tmp_path / 'segformer_b0.safetensors')
  save_file(state_dict(model), path)
  x = images((1, 64, 64, 3), seed=1)
  with torch.no_grad():
    ref = model(nchw(x)).logits.numpy()
  module, variables = vision.load_pretrained('segformer_b0', path)  # HF eps from default_overrides
  assert module.num_classes == 150 and module.decoder_dim == 256
  logits = jax.jit(lambda v, x: module.apply(v, x))(variables, x)
  np.testing.assert_allclose(np.asarray(logits).transpose(0, 3, 1, 2), ref, atol=1e-4, rtol=0)


def _mmseg_names(tensors):
  out = original_names(tensors, prefix='backbone.')
  for k, v in tensors.items():
    if k.startswith('decode_head.linear_projections.'):
      i = int(k.split('.')[2]) + 1
      out[f'decode_head.linear_c{i}.proj.{k.split(".")[-1]}'] = v
    elif k.startswith('decode_head.linear_fuse.'):
      out['decode_head.linear_fuse.conv.weight'] = v
    elif k.startswith('decode_head.batch_norm.'):
      out['decode_head.linear_fuse.bn.' + k.split('.')[-1]] = v
    elif k.startswith('decode_head.classifier.'):
      out['decode_head.linear_pred.' + k.split('.')[-1]] = v
  out['decode_head.conv_seg.weight'] = np.zeros((SMALL_CLASSES, 24, 1, 1), np.float32)
  return out


def test_mmseg_naming_gives_the_same_variables(small_hf, tmp_path):
  tensors, path, _, _ = small_hf
  _, expected = vision.load_pretrained('segformer_b0', path, **SMALL)
  mmseg = _mmseg_names(tensors)
  assert seg_weights.detect(mmseg) == 'original'
  mm_path = str(tmp_path / 'mmseg.safetensors')
  save_file(mmseg, mm_path)
  _, got = vision.load_pretrained('segformer_b0', mm_path, **SMALL)
  expected, got = flat(expected), flat(got)
  assert got.keys() == expected.keys()
  for key, value in expected.items():
    np.testing.assert_array_equal(np.asarray(got[key]), np.asarray(value), err_msg=key)


def test_misfit_checkpoints(small_hf):
  _, path, _, _ = small_hf
  with pytest.raises(ValueError, match='unexpected') as err:
    vision.load_pretrained('mit_b0', path, **{k: SMALL[k] for k in ('embed_dims', 'depths')})
  assert 'decode_head' in str(err.value)
  with pytest.raises(ValueError, match='backbone'):
    vision.load_pretrained('segformer_b0', path, **SMALL, backbone='pvt_tiny')


def test_decoder_on_swin_and_pvt_pyramids():
  # Registered names resolve to full backbones; trace them (no compile).
  for name, channels in (('swin_tiny_patch4_window7_224', 96), ('pvt_small', 64)):
    module = vision.create_model('segformer_b0', backbone=name, img_size=64, num_classes=3)
    shapes = jax.eval_shape(lambda m=module: m.init(jax.random.PRNGKey(0), jnp.zeros((1, 64, 64, 3))))
    assert shapes['params']['decode_head']['linear_c1']['kernel'].shape == (channels, 256)
    out = jax.eval_shape(lambda v, m=module: m.apply(v, jnp.zeros((1, 64, 64, 3))), shapes)
    assert out.shape == (1, 16, 16, 3)
  # Small backbones, run for real.
  swin = vision.create_model('swin_tiny_patch4_window7_224', img_size=32, embed_dim=8,
                             depths=(1, 1, 1, 1), num_heads=(1, 1, 1, 1), window_size=2)
  pvt_bb = vision.create_model('pvt_tiny', img_size=32, embed_dims=(8, 8, 8, 8), depths=(1, 1, 1, 1),
                               num_heads=(1, 1, 1, 1))
  models = [vision.create_model('segformer_b0', backbone=bb, img_size=32, num_classes=3,
                                decoder_dim=8) for bb in (swin, pvt_bb)]
  x = jnp.asarray(images((2, 32, 32, 3), seed=3))
  variables = [jax.eval_shape(lambda m=m: m.init(jax.random.PRNGKey(0), x)) for m in models]
  variables = [{  # random weights, BatchNorm statistics at (0, 1)
      'params': jax.tree.map(lambda s, k=k: 0.3 * jax.random.normal(jax.random.PRNGKey(k), s.shape),
                             v['params']),
      'batch_stats': jax.tree_util.tree_map_with_path(
          lambda path, s: jnp.ones(s.shape) if path[-1].key == 'var' else jnp.zeros(s.shape),
          v['batch_stats'])} for k, v in enumerate(variables)]
  outs = jax.jit(lambda vs, x: [m.apply(v, x) for m, v in zip(models, vs)])(variables, x)
  for out in outs:
    assert out.shape == (2, 8, 8, 3) and np.isfinite(np.asarray(out)).all()
    assert np.abs(np.asarray(out[0] - out[1])).max() > 1e-3  # depends on the image


def test_train_mode_updates_batchnorm_and_grads(small_hf):
  _, path, x, _ = small_hf
  module, variables = vision.load_pretrained('segformer_b0', path, **SMALL, drop_path_rate=0.0)

  @jax.jit
  def step(params, key):
    def loss(p):
      logits, state = module.apply(
          {'params': p, 'batch_stats': variables['batch_stats']}, x, train=True,
          rngs={'dropout': key}, mutable=['batch_stats', 'intermediates'],
          capture_intermediates=lambda m, _: m.name == 'linear_fuse')
      return jnp.mean(logits ** 2), state
    return jax.value_and_grad(loss, has_aux=True)(params)

  (l1, state), grads = step(variables['params'], jax.random.PRNGKey(1))
  (l2, _), _ = step(variables['params'], jax.random.PRNGKey(2))
  assert float(l1) != float(l2)  # decoder dropout 0.1 draws from the 'dropout' stream
  fused = state['intermediates']['decode_head']['linear_fuse']['__call__'][0]
  old = variables['batch_stats']['decode_head']['batch_norm']
  new = state['batch_stats']['decode_head']['batch_norm']
  np.testing.assert_allclose(np.asarray(new['mean']),  # torch momentum 0.1
                             0.9 * np.asarray(old['mean']) + 0.1 * np.asarray(fused).mean((0, 1, 2)),
                             atol=1e-5, rtol=1e-5)
  g = flat(grads)
  assert all(np.isfinite(np.asarray(v)).all() for v in g.values())
  for key in ('backbone/patch_embed1/proj/kernel', 'backbone/block1_0/mlp/dwconv/kernel',
              'decode_head/linear_c4/kernel', 'decode_head/linear_fuse/kernel',
              'decode_head/batch_norm/scale', 'decode_head/classifier/kernel'):
    assert np.abs(np.asarray(g[key])).max() > 0, key


def test_bad_input():
  with pytest.raises(ValueError, match='feature pyramid'):
    vision.create_model('segformer_b0', backbone='vit_small_patch16_224')
  with pytest.raises(ValueError, match='Unknown model name'):
    vision.create_model('segformer_b0', backbone='pvt_tiniest')
  with pytest.raises(ValueError, match='num_classes'):
    vision.create_model('segformer_b0', num_classes=0)
  module = vision.create_model('segformer_b0', num_classes=3)
  assert isinstance(module, segformer.SegFormer)
  shapes = jax.eval_shape(lambda: module.init(jax.random.PRNGKey(0), jnp.zeros((1, 64, 64, 3))))
  with pytest.raises(ValueError, match='in_chans'):
    jax.eval_shape(lambda v: module.apply(v, jnp.zeros((1, 64, 64, 4))), shapes)
