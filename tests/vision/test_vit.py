"""ViT and hybrid ViT: parameter counts, HuggingFace parity, weight import, behaviour.

Oracles: HuggingFace transformers `ViTForImageClassification` and `BitModel`
(PyTorch, CPU, random weights, eval mode); torch's bicubic `interpolate` for
position-embedding resizing. timm is not installed: its checkpoints are built
by renaming the HF state dict to timm's documented keys (fused `qkv`, …).
"""
from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from safetensors.numpy import save_file
from transformers import BitConfig
from transformers import BitModel
from transformers import ViTConfig
from transformers import ViTForImageClassification

import vision
from vision import layers
from vision import resize
from vision import resnetv2
from vision import vit
from vision.weights import vit as vit_weights

# Exact counts with a 1000-class head at 224 (docs/references.md; timm = HF).
EXPECTED_PARAMS = {
    'vit_tiny_patch16_224': 5_717_416,
    'vit_small_patch16_224': 22_050_664,
    'vit_base_patch16_224': 86_567_656,
    'vit_base_patch32_224': 88_224_232,
    'vit_large_patch16_224': 304_326_632,
    # 97,890,112 without the 1000-class head (docs/references.md: 97.89M) + 768·1000 + 1000;
    # timm's 384 variant adds (577 − 197)·768 position entries: 98,950,952 (98.95M).
    'vit_base_r50_s16_224': 98_659_112,
    'vit': 86_567_656,  # the class defaults: ViT-B/16
}

SMALL = dict(img_size=32, patch_size=8, embed_dim=48, depth=2, num_heads=3)
TOL = 1e-4


def _randn(seed: int, shape: tuple[int, ...]) -> jnp.ndarray:
  """Standard normal test inputs from numpy (no per-shape PRNG compilation)."""
  return jnp.asarray(np.random.default_rng(seed).standard_normal(shape, dtype=np.float32))


def _shapes(module, size, chans=3):
  x = jnp.zeros((1, size, size, chans), jnp.float32)
  return jax.eval_shape(lambda: module.init(jax.random.PRNGKey(0), x, train=False))


def _forward(module, variables, x: torch.Tensor) -> np.ndarray:
  """Jitted eval forward on an NCHW torch batch (one compile, not one per op)."""
  return np.asarray(jax.jit(lambda v, x: module.apply(v, x))(variables, _nhwc(x)))


def _jit(module):
  """`module.apply`, jitted (`train` static)."""
  return jax.jit(module.apply, static_argnames=('train',))


def _nhwc(x: torch.Tensor) -> jnp.ndarray:
  return jnp.asarray(x.permute(0, 2, 3, 1).numpy())


def _state(model: torch.nn.Module) -> dict[str, np.ndarray]:
  return {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}


def _randomise_norms(model: torch.nn.Module, seed: int) -> None:
  """LayerNorm/GroupNorm start at (1, 0) in HF; perturb them so the test sees them."""
  gen = torch.Generator().manual_seed(seed)
  with torch.no_grad():
    for name, p in model.named_parameters():
      if 'norm' in name:
        p.add_(0.3 * torch.randn(p.shape, generator=gen))


def _hf_vit(seed=0, **kw) -> ViTForImageClassification:
  torch.manual_seed(seed)
  cfg = dict(hidden_size=48, num_hidden_layers=2, num_attention_heads=3, intermediate_size=192,
             image_size=32, patch_size=8, num_labels=5, hidden_act='gelu')  # HF's ε = 1e-12
  model = ViTForImageClassification(ViTConfig(**{**cfg, **kw})).eval()
  _randomise_norms(model, seed)
  return model


def to_legacy_hf(state: dict) -> dict:
  """transformers 5.x ViT names → the 4.x names of the published checkpoints."""
  out = {}
  for k, v in state.items():
    k = k.replace('vit.layers.', 'vit.encoder.layer.')
    for new, old in (('attention.q_proj.', 'attention.attention.query.'),
                     ('attention.k_proj.', 'attention.attention.key.'),
                     ('attention.v_proj.', 'attention.attention.value.'),
                     ('attention.o_proj.', 'attention.output.dense.'),
                     ('mlp.fc1.', 'intermediate.dense.'), ('mlp.fc2.', 'output.dense.')):
      k = k.replace(new, old)
    out[k] = v
  return out


def to_timm(state: dict, depth: int) -> dict:
  """HF ViT state dict → timm `VisionTransformer` keys (q, k, v fused into qkv)."""
  out = {'cls_token': state['vit.embeddings.cls_token'],
         'pos_embed': state['vit.embeddings.position_embeddings'],
         'patch_embed.proj.weight': state['vit.embeddings.patch_embeddings.projection.weight'],
         'patch_embed.proj.bias': state['vit.embeddings.patch_embeddings.projection.bias'],
         'norm.weight': state['vit.layernorm.weight'], 'norm.bias': state['vit.layernorm.bias'],
         'head.weight': state['classifier.weight'], 'head.bias': state['classifier.bias']}
  for i in range(depth):
    hf, tm = f'vit.layers.{i}.', f'blocks.{i}.'
    for p in ('weight', 'bias'):
      out[f'{tm}norm1.{p}'] = state[f'{hf}layernorm_before.{p}']
      out[f'{tm}norm2.{p}'] = state[f'{hf}layernorm_after.{p}']
      out[f'{tm}attn.qkv.{p}'] = np.concatenate(
          [state[f'{hf}attention.{c}_proj.{p}'] for c in 'qkv'], axis=0)
      out[f'{tm}attn.proj.{p}'] = state[f'{hf}attention.o_proj.{p}']
      out[f'{tm}mlp.fc1.{p}'] = state[f'{hf}mlp.fc1.{p}']
      out[f'{tm}mlp.fc2.{p}'] = state[f'{hf}mlp.fc2.{p}']
  return out


@pytest.fixture(scope='module')
def small_vit(tmp_path_factory):
  """A small HF ViT, its checkpoint on disk and logits on a fixed batch."""
  model = _hf_vit()
  state = _state(model)
  path = str(tmp_path_factory.mktemp('vit') / 'vit.safetensors')
  save_file(state, path)
  x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
  with torch.no_grad():
    out = model(x, output_hidden_states=True)
  return dict(model=model, state=state, path=path, x=x, logits=out.logits.numpy(),
              last_hidden=out.hidden_states[-1].numpy())


# ---------------------------------------------------------------- param counts


@functools.lru_cache(maxsize=None)
def _count(name: str) -> int:
  return vision.param_count(_shapes(vision.create_model(name), 224))


@pytest.mark.parametrize('name', sorted(EXPECTED_PARAMS))
def test_param_count(name):
  assert _count(name) == EXPECTED_PARAMS[name]


def test_hybrid_count_without_head_is_reference_97_89m():
  assert _count('vit_base_r50_s16_224') - (768 * 1000 + 1000) == 97_890_112


def test_scan_blocks_keeps_the_count_and_stacks_params():
  module = vision.create_model('vit_small_patch16_224', scan_blocks=True)
  shapes = _shapes(module, 224)
  assert vision.param_count(shapes) == EXPECTED_PARAMS['vit_small_patch16_224']
  assert shapes['params']['blocks']['attn']['qkv']['kernel'].shape == (12, 384, 1152)


# ---------------------------------------------------------------- HF parity


def test_hf_parity_small(small_vit, kernel_mode):
  module, variables = vision.load_pretrained('vit_tiny_patch16_224', small_vit['path'], **SMALL)
  assert module.num_classes == 5  # taken from the checkpoint
  logits = _forward(module, variables, small_vit['x'])
  np.testing.assert_allclose(logits, small_vit['logits'], atol=TOL, rtol=0)


def test_hf_naming_implies_hf_layernorm_eps(small_vit, tmp_path):
  """HF checkpoints load with HF's ε = 1e-12, timm ones with 1e-6; explicit ε wins."""
  module, _ = vision.load_pretrained('vit_tiny_patch16_224', small_vit['path'], **SMALL)
  assert module.norm_eps == 1e-12
  path = str(tmp_path / 'timm.safetensors')
  save_file(to_timm(small_vit['state'], depth=2), path)
  module, _ = vision.load_pretrained('vit_tiny_patch16_224', path, **SMALL)
  assert module.norm_eps == 1e-6
  # An HF model built with another ε matches only when that ε is passed.
  model = _hf_vit(seed=7, layer_norm_eps=1e-3)
  hf_path = str(tmp_path / 'eps.safetensors')
  save_file(_state(model), hf_path)
  x = small_vit['x']
  with torch.no_grad():
    want = model(x).logits.numpy()
  module, variables = vision.load_pretrained('vit_tiny_patch16_224', hf_path, norm_eps=1e-3,
                                             **SMALL)
  np.testing.assert_allclose(_forward(module, variables, x), want, atol=TOL, rtol=0)
  module, variables = vision.load_pretrained('vit_tiny_patch16_224', hf_path, **SMALL)
  assert np.abs(_forward(module, variables, x) - want).max() > TOL


def test_norm_eps_must_be_positive():
  with pytest.raises(ValueError, match='norm_eps'):
    vision.create_model('vit_tiny_patch16_224', norm_eps=0.0)


def test_hf_parity_scanned_and_rematted(small_vit):
  module, variables = vision.load_pretrained(
      'vit_tiny_patch16_224', small_vit['path'], scan_blocks=True, remat=True, **SMALL)
  logits = _forward(module, variables, small_vit['x'])
  np.testing.assert_allclose(logits, small_vit['logits'], atol=TOL, rtol=0)


def test_hf_legacy_naming_loads_the_same(small_vit, tmp_path):
  path = str(tmp_path / 'legacy.npz')
  np.savez(path, **to_legacy_hf(small_vit['state']))
  module, variables = vision.load_pretrained('vit_tiny_patch16_224', path, **SMALL)
  np.testing.assert_allclose(_forward(module, variables, small_vit['x']),
                             small_vit['logits'], atol=TOL, rtol=0)


def test_timm_naming_gives_identical_variables(small_vit, tmp_path):
  path = str(tmp_path / 'timm.safetensors')
  timm_state = to_timm(small_vit['state'], depth=2)
  save_file(timm_state, path)
  assert vit_weights.detect(timm_state) == 'timm'
  assert vit_weights.detect(small_vit['state']) == 'hf'
  _, from_hf = vision.load_pretrained('vit_tiny_patch16_224', small_vit['path'], **SMALL)
  _, from_timm = vision.load_pretrained('vit_tiny_patch16_224', path, **SMALL)
  jax.tree.map(np.testing.assert_array_equal, from_hf, from_timm)


def test_gap_pooling_matches_timm_fc_norm_definition(small_vit, tmp_path):
  """timm 'avg' pooling: mean of the patch tokens, then fc_norm, then head."""
  state = to_timm(small_vit['state'], depth=2)
  state['fc_norm.weight'] = state.pop('norm.weight')
  state['fc_norm.bias'] = state.pop('norm.bias')
  path = str(tmp_path / 'gap.safetensors')
  save_file(state, path)
  module, variables = vision.load_pretrained('vit_tiny_patch16_224', path, pool='gap', **SMALL)
  tokens = torch.from_numpy(small_vit['last_hidden'])  # HF hidden state before the final LN
  hf = small_vit['model']
  with torch.no_grad():
    pooled = torch.nn.functional.layer_norm(tokens[:, 1:].mean(1), (48,), hf.vit.layernorm.weight,
                                            hf.vit.layernorm.bias, eps=1e-6)
    expected = hf.classifier(pooled).numpy()
  np.testing.assert_allclose(_forward(module, variables, small_vit['x']), expected,
                             atol=TOL, rtol=0)


def test_load_at_another_size_interpolates_grid_like_hf(small_vit):
  x = torch.randn(2, 3, 48, 48, generator=torch.Generator().manual_seed(2))
  with torch.no_grad():
    expected = small_vit['model'](x, interpolate_pos_encoding=True).logits.numpy()
  module, variables = vision.load_pretrained('vit_tiny_patch16_224', small_vit['path'],
                                             **{**SMALL, 'img_size': 48})
  pos = variables['params']['pos_embed']
  assert pos.shape == (1, 1 + 36, 48)
  np.testing.assert_array_equal(pos[:, 0], small_vit['state']['vit.embeddings.position_embeddings'][:, 0])
  np.testing.assert_allclose(_forward(module, variables, x), expected, atol=TOL, rtol=0)


@pytest.mark.parametrize('old,new', [(4, 6), (7, 3), (5, (8, 4))])
def test_resize_pos_embed_matches_torch_bicubic(old, new):
  rng = np.random.default_rng(0)
  pos = rng.standard_normal((1, 1 + old * old, 8)).astype(np.float32)
  grid = (new, new) if isinstance(new, int) else new
  got = resize.resize_pos_embed(pos, grid)
  ref = torch.nn.functional.interpolate(
      torch.from_numpy(pos[:, 1:].reshape(1, old, old, 8)).permute(0, 3, 1, 2),
      size=grid, mode='bicubic', align_corners=False).permute(0, 2, 3, 1).reshape(1, -1, 8)
  np.testing.assert_array_equal(got[:, 0], pos[:, 0])
  np.testing.assert_allclose(got[:, 1:], ref.numpy(), atol=1e-5)


def test_misfit_checkpoint_lists_missing_unexpected_misshaped(small_vit, tmp_path):
  state = dict(small_vit['state'])
  state['vit.pooler.dense.weight'] = np.zeros((48, 48), np.float32)
  del state['vit.layers.1.mlp.fc2.bias']
  path = str(tmp_path / 'bad.safetensors')
  save_file(state, path)
  with pytest.raises(ValueError) as err:
    vision.load_pretrained('vit_tiny_patch16_224', path, **SMALL, num_classes=7, head='keep')
  msg = str(err.value)
  assert 'missing' in msg and 'blocks_1/mlp/fc2/bias' in msg
  assert 'unexpected' in msg and 'vit.pooler.dense.weight' in msg
  assert 'mis-shaped' in msg and 'head/bias: checkpoint (5,) vs model (7,)' in msg


def test_non_vit_checkpoint_is_rejected(tmp_path):
  path = str(tmp_path / 'other.npz')
  np.savez(path, **{'foo.weight': np.zeros((2, 2), np.float32)})
  with pytest.raises(ValueError, match='does not look like a vit checkpoint'):
    vision.load_pretrained('vit_tiny_patch16_224', path)


def test_hf_parity_full_size_vit_tiny(tmp_path):
  """vit_tiny_patch16_224 at 224×224, 1000 classes, against HF on the same weights."""
  model = _hf_vit(seed=3, hidden_size=192, num_hidden_layers=12, num_attention_heads=3,
                  intermediate_size=768, image_size=224, patch_size=16, num_labels=1000)
  path = str(tmp_path / 'vit_tiny.safetensors')
  save_file(_state(model), path)
  x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(4))
  with torch.no_grad():
    expected = model(x).logits.numpy()
  module, variables = vision.load_pretrained('vit_tiny_patch16_224', path)
  assert vision.param_count(variables) == EXPECTED_PARAMS['vit_tiny_patch16_224']
  np.testing.assert_allclose(_forward(module, variables, x), expected, atol=TOL, rtol=0)


# ---------------------------------------------------------------- hybrid


def _hf_bit(seed=0) -> BitModel:
  torch.manual_seed(seed)
  cfg = BitConfig(layer_type='bottleneck', global_padding='SAME', depths=[1, 1, 1],
                  hidden_sizes=[256, 512, 1024], embedding_dynamic_padding=True)
  model = BitModel(cfg).eval()
  _randomise_norms(model, seed)
  return model


@pytest.fixture(scope='module')
def hybrid(tmp_path_factory):
  """HF BitModel stem + a ViT over its 1×1 patches, as a ViTHybrid-named checkpoint."""
  bit = _hf_bit()
  head = _hf_vit(seed=5, num_channels=1024, patch_size=1, image_size=3)
  x = torch.randn(2, 3, 35, 35, generator=torch.Generator().manual_seed(6))  # odd: SAME pads
  with torch.no_grad():
    features = bit(x).last_hidden_state
    logits = head(features).logits.numpy()
  state = {f'vit.embeddings.patch_embeddings.backbone.bit.{k}': v for k, v in _state(bit).items()}
  state.update(_state(head))
  path = str(tmp_path_factory.mktemp('hybrid') / 'hybrid.safetensors')
  save_file(state, path)
  return dict(bit=bit, head=head, x=x, features=features.numpy(), logits=logits,
              state=state, path=path)


HYBRID_SMALL = dict(img_size=35, hybrid_depths=(1, 1, 1), embed_dim=48, depth=2, num_heads=3)


def test_resnetv2_stem_matches_bitmodel_features(hybrid):
  params = vit_weights.convert_bit(_state(hybrid['bit']))
  out = resnetv2.ResNetV2((1, 1, 1)).apply({'params': params}, _nhwc(hybrid['x']))
  assert out.shape == (2, 3, 3, 1024) and resnetv2.feature_size(35, 3) == 3
  np.testing.assert_allclose(np.asarray(out).transpose(0, 3, 1, 2), hybrid['features'],
                             atol=TOL, rtol=0)


def test_hybrid_parity_hf_naming(hybrid, kernel_mode):
  module, variables = vision.load_pretrained('vit_base_r50_s16_224', hybrid['path'], **HYBRID_SMALL)
  np.testing.assert_allclose(_forward(module, variables, hybrid['x']), hybrid['logits'],
                             atol=TOL, rtol=0)


def test_hybrid_timm_naming_gives_identical_variables(hybrid, tmp_path):
  stem = 'vit.embeddings.patch_embeddings.backbone.bit.'
  timm_state = to_timm({k: v for k, v in hybrid['state'].items() if not k.startswith(stem)}, 2)
  for k, v in hybrid['state'].items():
    if k.startswith(stem):
      k = k[len(stem):].replace('embedder.convolution.', 'stem.conv.').replace(
          'embedder.norm.', 'stem.norm.').replace('encoder.stages.', 'stages.').replace(
              '.layers.', '.blocks.')
      timm_state['patch_embed.backbone.' + k] = v
  path = str(tmp_path / 'hybrid_timm.safetensors')
  save_file(timm_state, path)
  _, from_hf = vision.load_pretrained('vit_base_r50_s16_224', hybrid['path'], **HYBRID_SMALL)
  _, from_timm = vision.load_pretrained('vit_base_r50_s16_224', path, **HYBRID_SMALL)
  jax.tree.map(np.testing.assert_array_equal, from_hf, from_timm)


# ---------------------------------------------------------------- behaviour


@pytest.fixture(scope='module')
def digits_vit():
  """The trainer's configuration: 16×16 grey digits, 4×4 patches, 10 classes."""
  module = vision.create_model('vit_tiny_patch16_224', img_size=16, patch_size=4, in_chans=1,
                               num_classes=10, embed_dim=32, depth=2, num_heads=2,
                               drop_rate=0.1, drop_path_rate=0.2)
  x = _randn(0, (4, 16, 16, 1))
  variables = jax.jit(module.init)(jax.random.PRNGKey(1), x)
  return module, variables, x


def test_shapes_jit_and_grad(digits_vit):
  module, variables, x = digits_vit
  y = _jit(module)(variables, x)
  assert y.shape == (4, 10) and y.dtype == jnp.float32

  def loss(v):
    logits = _jit(module)(v, x, train=True, rngs={'dropout': jax.random.PRNGKey(2)})
    return jnp.mean(jax.nn.logsumexp(logits, -1) - logits[:, 0])

  grads = jax.jit(jax.grad(loss))(variables)
  norms = jax.tree.map(lambda g: float(jnp.linalg.norm(g)), grads)
  assert all(np.isfinite(n) for n in jax.tree.leaves(norms))
  assert norms['params']['blocks_0']['attn']['qkv']['kernel'] > 0
  assert norms['params']['pos_embed'] > 0


def test_train_mode_is_stochastic_and_eval_deterministic(digits_vit):
  module, variables, x = digits_vit
  eval1, eval2 = _jit(module)(variables, x), _jit(module)(variables, x, train=False)
  np.testing.assert_array_equal(eval1, eval2)
  t1 = _jit(module)(variables, x, train=True, rngs={'dropout': jax.random.PRNGKey(0)})
  t2 = _jit(module)(variables, x, train=True, rngs={'dropout': jax.random.PRNGKey(1)})
  t1b = _jit(module)(variables, x, train=True, rngs={'dropout': jax.random.PRNGKey(0)})
  assert not np.allclose(t1, t2) and not np.allclose(t1, eval1)
  np.testing.assert_array_equal(t1, t1b)
  with pytest.raises(Exception, match='dropout'):
    module.apply(variables, x, train=True)


class _DropPathProbe(nn.Module):
  rate: object

  @nn.compact
  def __call__(self, x):
    return layers.drop_path(self, x, self.rate, deterministic=False)


@pytest.mark.parametrize('traced', [False, True])
def test_drop_path_drops_whole_examples_and_rescales(traced):
  """Per example: all of x/(1−r) with probability 1−r, else zeros (rate may be traced)."""
  rate = jnp.float32(0.3) if traced else 0.3
  x = jnp.ones((4000, 3))
  y = np.asarray(_DropPathProbe(rate).apply({}, x, rngs={'dropout': jax.random.PRNGKey(0)}))
  kept = y[:, 0] != 0
  np.testing.assert_allclose(y[kept], 1 / 0.7, rtol=1e-6)
  np.testing.assert_array_equal(y[~kept], 0)
  assert abs(kept.mean() - 0.7) < 0.03 and abs(y.mean() - 1) < 0.05


def test_drop_path_rate_is_linear_over_blocks():
  """linspace(0, r, depth): a single block gets rate 0, so train equals eval."""
  module = vision.create_model('vit_tiny_patch16_224', img_size=16, patch_size=4, in_chans=1,
                               embed_dim=32, depth=1, num_heads=2, num_classes=10,
                               drop_path_rate=0.5)
  x = _randn(0, (8, 16, 16, 1))
  variables = jax.jit(module.init)(jax.random.PRNGKey(1), x)
  y_train = _jit(module)(variables, x, train=True, rngs={'dropout': jax.random.PRNGKey(2)})
  np.testing.assert_allclose(y_train, _jit(module)(variables, x), atol=1e-6)


def test_scan_and_unrolled_blocks_agree(digits_vit):
  module, variables, x = digits_vit
  scanned = module.clone(scan_blocks=True)
  params = dict(variables['params'])
  blocks = [params.pop(f'blocks_{i}') for i in range(2)]
  params['blocks'] = jax.tree.map(lambda *a: jnp.stack(a), *blocks)
  np.testing.assert_allclose(_jit(scanned)({'params': params}, x), _jit(module)(variables, x),
                             atol=1e-5)


def test_remat_gives_the_same_gradient(digits_vit):
  module, variables, x = digits_vit
  loss = lambda m: lambda v: _jit(m)(v, x).sum()  # noqa: E731
  g1 = jax.jit(jax.grad(loss(module)))(variables)
  g2 = jax.jit(jax.grad(loss(module.clone(remat=True))))(variables)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-5), g1, g2)


def test_bfloat16_compute_keeps_float32_params(digits_vit):
  module, variables, x = digits_vit
  bf16 = module.clone(dtype=jnp.bfloat16)
  shapes = jax.eval_shape(bf16.init, jax.random.PRNGKey(1), x)
  assert all(v.dtype == jnp.float32 for v in jax.tree.leaves(shapes))
  y = _jit(bf16)(variables, x)
  assert y.dtype == jnp.float32
  np.testing.assert_allclose(y, _jit(module)(variables, x), atol=0.1)


def test_vit_tiny_gmacs_match_reference():
  """docs/references.md: ViT-Ti/16 at 224 is 1.26 GMACs (XLA also counts softmax/LN/GELU)."""
  info = vision.summary('vit_tiny_patch16_224')
  assert info['params'] == EXPECTED_PARAMS['vit_tiny_patch16_224']
  assert 1.24 < info['gmacs'] < 1.34


# ---------------------------------------------------------------- bad input


def test_wrong_image_size_or_channels_fail_before_compiling(digits_vit):
  module, variables, _ = digits_vit
  with pytest.raises(ValueError, match=r'expects images of shape \[batch, 16, 16, 1\].*got \(2, 32, 32, 1\)'):
    module.apply(variables, jnp.zeros((2, 32, 32, 1)))
  with pytest.raises(ValueError, match='in_chans=3'):
    module.apply(variables, jnp.zeros((2, 16, 16, 3)))


@pytest.mark.parametrize('overrides,match', [
    (dict(img_size=100), 'patch_size=16 does not tile img_size=100'),
    (dict(num_heads=5), 'embed_dim=192 is not divisible by num_heads=5'),
    (dict(pool='max'), "pool='max' is unknown; valid: token, gap"),
    (dict(drop_path_rate=1.0), r'drop_path_rate must be in \[0, 1\)'),
    (dict(depth=0), 'depth must be a positive int'),
])
def test_impossible_hyperparameters_raise(overrides, match):
  with pytest.raises(ValueError, match=match):
    vision.create_model('vit_tiny_patch16_224', **overrides)
