"""Google `.npz` ViT naming, classifier re-initialisation, misfits, MiT → SegFormer.

Oracle: HuggingFace `ViTForImageClassification` / `ViTModel` (its pooler is
the paper's `pre_logits` tanh layer) and `BitModel` (the R50 stem) with
random weights; each `.npz` is written by renaming the HF weights into the
naming of google-research/vision_transformer (`Transformer/encoderblock_N/
MultiHeadDotProductAttention_1/query/kernel` [D, heads, d], …), so loading it
must reproduce HF's logits.
"""
from __future__ import annotations

import jax
import numpy as np
import pytest
import torch
from safetensors.numpy import save_file
from transformers import BitConfig
from transformers import BitModel
from transformers import SegformerConfig
from transformers import SegformerForImageClassification
from transformers import ViTConfig
from transformers import ViTForImageClassification
from transformers import ViTModel

import vision
from vision import pretrained
from vision.weights import vit as vit_weights

from tests.vision.test_resize import randomize
from tests.vision.test_resize import state_dict

TOL = 1e-4
D, HEADS, DEPTH, CLASSES = 48, 3, 2, 5
VIT = dict(hidden_size=D, num_hidden_layers=DEPTH, num_attention_heads=HEADS,
           intermediate_size=4 * D, hidden_act='gelu', layer_norm_eps=1e-6)
SMALL = dict(img_size=32, patch_size=8, embed_dim=D, depth=DEPTH, num_heads=HEADS)


def _logits(module, variables, x: torch.Tensor) -> np.ndarray:
  return np.asarray(jax.jit(lambda v, x: module.apply(v, x))(variables,
                                                            x.permute(0, 2, 3, 1).numpy()))


def to_google(state: dict, prefix: str) -> dict[str, np.ndarray]:
  """HF ViT weights (`prefix` = 'vit.' or '' for a bare ViTModel) → Google naming."""
  hd = D // HEADS
  g = {'embedding/kernel': state[f'{prefix}embeddings.patch_embeddings.projection.weight']
       .transpose(2, 3, 1, 0),
       'embedding/bias': state[f'{prefix}embeddings.patch_embeddings.projection.bias'],
       'cls': state[f'{prefix}embeddings.cls_token'],
       'Transformer/posembed_input/pos_embedding': state[f'{prefix}embeddings.position_embeddings'],
       'Transformer/encoder_norm/scale': state[f'{prefix}layernorm.weight'],
       'Transformer/encoder_norm/bias': state[f'{prefix}layernorm.bias']}
  for i in range(DEPTH):
    hf, b = f'{prefix}layers.{i}.', f'Transformer/encoderblock_{i}/'
    for ln, name in (('LayerNorm_0', 'layernorm_before'), ('LayerNorm_2', 'layernorm_after')):
      g[f'{b}{ln}/scale'] = state[f'{hf}{name}.weight']
      g[f'{b}{ln}/bias'] = state[f'{hf}{name}.bias']
    att = f'{b}MultiHeadDotProductAttention_1/'
    for c, name in (('q', 'query'), ('k', 'key'), ('v', 'value')):
      g[f'{att}{name}/kernel'] = state[f'{hf}attention.{c}_proj.weight'].T.reshape(D, HEADS, hd)
      g[f'{att}{name}/bias'] = state[f'{hf}attention.{c}_proj.bias'].reshape(HEADS, hd)
    g[f'{att}out/kernel'] = state[f'{hf}attention.o_proj.weight'].T.reshape(HEADS, hd, D)
    g[f'{att}out/bias'] = state[f'{hf}attention.o_proj.bias']
    for dense, fc in (('Dense_0', 'fc1'), ('Dense_1', 'fc2')):
      g[f'{b}MlpBlock_3/{dense}/kernel'] = state[f'{hf}mlp.{fc}.weight'].T
      g[f'{b}MlpBlock_3/{dense}/bias'] = state[f'{hf}mlp.{fc}.bias']
  if f'{prefix}pooler.dense.weight' in state:
    g['pre_logits/kernel'] = state[f'{prefix}pooler.dense.weight'].T
    g['pre_logits/bias'] = state[f'{prefix}pooler.dense.bias']
  return g


def bit_to_google(state: dict) -> dict[str, np.ndarray]:
  """HF BitModel weights → the R50 root/stages naming (GroupNorms as pre-linen [1, 1, 1, C])."""
  g = {'conv_root/kernel': state['embedder.convolution.weight'].transpose(2, 3, 1, 0),
       'gn_root/scale': state['embedder.norm.weight'].reshape(1, 1, 1, -1),
       'gn_root/bias': state['embedder.norm.bias'].reshape(1, 1, 1, -1)}
  for key, value in state.items():
    parts = key.split('.')
    if parts[:2] != ['encoder', 'stages']:
      continue
    stage, unit = int(parts[2]) + 1, int(parts[4]) + 1
    layer, leaf = '.'.join(parts[5:-1]), parts[-1]
    name = {'downsample.conv': 'conv_proj', 'downsample.norm': 'gn_proj'}.get(
        layer, layer.replace('norm', 'gn'))
    out = f'block{stage}/unit{unit}/{name}/'
    if leaf == 'weight' and value.ndim == 4:
      g[out + 'kernel'] = value.transpose(2, 3, 1, 0)
    else:
      g[out + ('scale' if leaf == 'weight' else 'bias')] = value.reshape(1, 1, 1, -1)
  return g


def _with_head(backbone: torch.nn.Module, pooled: bool, seed: int):
  """HF logits function and Google tensors of a classifier (pooler = pre_logits if `pooled`)."""
  torch.manual_seed(seed)
  if not pooled:
    return backbone, lambda x: backbone(x).logits
  head = torch.nn.Linear(D, CLASSES)
  randomize(head, seed + 1)
  return head, lambda x: head(backbone(x).pooler_output)


@pytest.fixture(scope='module', params=['plain', 'pre_logits'])
def google_vit(request, tmp_path_factory):
  pooled = request.param == 'pre_logits'
  torch.manual_seed(0)
  if pooled:
    model = ViTModel(ViTConfig(**VIT, image_size=32, patch_size=8), add_pooling_layer=True).eval()
  else:
    model = ViTForImageClassification(ViTConfig(**VIT, image_size=32, patch_size=8,
                                                num_labels=CLASSES)).eval()
  randomize(model, 1)
  head, forward = _with_head(model, pooled, seed=2)
  state = state_dict(model)
  tensors = to_google(state, '' if pooled else 'vit.')
  hw = head.weight if pooled else model.classifier.weight
  hb = head.bias if pooled else model.classifier.bias
  tensors['head/kernel'] = hw.detach().numpy().T.copy()
  tensors['head/bias'] = hb.detach().numpy().copy()
  path = str(tmp_path_factory.mktemp('npz') / 'vit.npz')
  np.savez(path, **tensors)
  x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(3))
  with torch.no_grad():
    logits = forward(x).numpy()
  return dict(path=path, tensors=tensors, x=x, logits=logits, pooled=pooled)


def test_google_vit_npz_equals_hf_logits(google_vit):
  assert vit_weights.detect(google_vit['tensors']) == 'google'
  module, variables = vision.load_pretrained('vit_tiny_patch16_224', google_vit['path'], **SMALL)
  assert module.num_classes == CLASSES
  assert module.representation_size == (D if google_vit['pooled'] else None)
  np.testing.assert_allclose(_logits(module, variables, google_vit['x']), google_vit['logits'],
                             atol=TOL, rtol=0)


def test_google_scanned_encoder_loads_the_same(google_vit, tmp_path):
  """big_vision's scanned encoder: one `Transformer/encoderblock` tree with a leading [L]."""
  tensors = dict(google_vit['tensors'])
  blocks = [k for k in tensors if k.startswith('Transformer/encoderblock_0/')]
  for key in blocks:
    rest = key[len('Transformer/encoderblock_0/'):]
    tensors['Transformer/encoderblock/' + rest] = np.stack(
        [tensors.pop(f'Transformer/encoderblock_{i}/{rest}') for i in range(DEPTH)])
  path = str(tmp_path / 'scanned.npz')
  np.savez(path, **tensors)
  module, variables = vision.load_pretrained('vit_tiny_patch16_224', path, scan_blocks=True,
                                             **SMALL)
  np.testing.assert_allclose(_logits(module, variables, google_vit['x']), google_vit['logits'],
                             atol=TOL, rtol=0)


def test_other_class_count_zeroes_the_head_only(google_vit):
  module, fitted = pretrained.fit_checkpoint('vit_tiny_patch16_224', google_vit['path'],
                                             num_classes=3, **SMALL)
  params = fitted.variables['params']
  assert fitted.zeroed == ['params/head/bias', 'params/head/kernel']
  assert params['head']['kernel'].shape == (D, 3)
  assert not np.any(params['head']['kernel']) and not np.any(params['head']['bias'])
  np.testing.assert_array_equal(params['cls_token'], google_vit['tensors']['cls'])
  assert not np.any(_logits(module, fitted.variables, google_vit['x']))
  _, kept = pretrained.fit_checkpoint('vit_tiny_patch16_224', google_vit['path'], **SMALL)
  assert kept.zeroed == [] and np.any(kept.variables['params']['head']['kernel'])
  _, reinit = pretrained.fit_checkpoint('vit_tiny_patch16_224', google_vit['path'],
                                        head='reinit', **SMALL)
  assert not np.any(reinit.variables['params']['head']['kernel'])


def test_dropping_pre_logits_discards_it_and_zeroes_the_head(google_vit):
  if not google_vit['pooled']:
    pytest.skip('the checkpoint has no pre_logits')
  module, fitted = pretrained.fit_checkpoint('vit_tiny_patch16_224', google_vit['path'],
                                             representation_size=None, **SMALL)
  assert 'pre_logits' not in fitted.variables['params']
  assert fitted.discarded == ['params/pre_logits/bias', 'params/pre_logits/kernel']
  assert fitted.zeroed == ['params/head/bias', 'params/head/kernel']
  with pytest.raises(ValueError, match='unexpected .*pre_logits'):
    pretrained.fit_checkpoint('vit_tiny_patch16_224', google_vit['path'],
                              representation_size=None, head='keep', **SMALL)


def test_misfit_raises_one_line_naming_paths(google_vit, tmp_path):
  tensors = dict(google_vit['tensors'])
  tensors['Transformer/encoderblock_0/Extra_0/kernel'] = np.zeros((2, 2), np.float32)
  path = str(tmp_path / 'bad.npz')
  np.savez(path, **tensors)
  with pytest.raises(ValueError) as err:
    vision.load_pretrained('vit_tiny_patch16_224', path, **{**SMALL, 'depth': 3, 'patch_size': 4})
  msg = str(err.value)
  assert '\n' not in msg
  assert 'missing (' in msg and 'params/blocks_2/attn/qkv/kernel' in msg
  assert 'unexpected (1): Transformer/encoderblock_0/Extra_0/kernel' in msg
  assert 'params/patch_embed/kernel: checkpoint (8, 8, 3, 48) vs model (4, 4, 3, 48)' in msg


@pytest.mark.parametrize('pooled', [False, True])
def test_google_r50_vit_npz_equals_hf_logits(tmp_path, pooled):
  torch.manual_seed(4)
  bit = BitModel(BitConfig(layer_type='bottleneck', global_padding='SAME', depths=[1, 1, 1],
                           hidden_sizes=[256, 512, 1024],
                           embedding_dynamic_padding=True)).eval()
  randomize(bit, 5)
  cfg = ViTConfig(**VIT, image_size=3, patch_size=1, num_channels=1024, num_labels=CLASSES)
  vit = (ViTModel(cfg, add_pooling_layer=True) if pooled else ViTForImageClassification(cfg))
  vit = vit.eval()
  randomize(vit, 6)
  head, forward = _with_head(vit, pooled, seed=7)
  tensors = to_google(state_dict(vit), '' if pooled else 'vit.')
  tensors.update(bit_to_google(state_dict(bit)))
  hw, hb = (head.weight, head.bias) if pooled else (vit.classifier.weight, vit.classifier.bias)
  tensors['head/kernel'] = hw.detach().numpy().T.copy()
  tensors['head/bias'] = hb.detach().numpy().copy()
  path = str(tmp_path / 'r50_vit.npz')
  np.savez(path, **tensors)
  x = torch.randn(2, 3, 35, 35, generator=torch.Generator().manual_seed(8))
  with torch.no_grad():
    want = forward(bit(x).last_hidden_state).numpy()
  module, variables = vision.load_pretrained(
      'vit_base_r50_s16_224', path, img_size=35, hybrid_depths=(1, 1, 1), embed_dim=D,
      depth=DEPTH, num_heads=HEADS)
  np.testing.assert_allclose(_logits(module, variables, x), want, atol=TOL, rtol=0)


def test_segformer_from_mit_classifier_gets_encoder_and_fresh_decoder(tmp_path):
  """The SegFormer paper's setup: ImageNet MiT weights, decoder from its initialisation."""
  small = dict(embed_dims=(16, 32, 40, 64), depths=(1, 2, 1, 1))
  torch.manual_seed(0)
  mit = SegformerForImageClassification(SegformerConfig(
      hidden_sizes=list(small['embed_dims']), depths=list(small['depths']),
      num_labels=10)).eval()
  randomize(mit, 9)
  path = str(tmp_path / 'mit.safetensors')
  save_file(state_dict(mit), path)
  module, fitted = pretrained.fit_checkpoint('segformer_b0', path, num_classes=150, img_size=64,
                                             decoder_dim=24, **small)
  assert module.num_classes == 150
  assert fitted.loaded and all(p.startswith('params/backbone/') for p in fitted.loaded)
  assert fitted.fresh and all(p.split('/')[1] == 'decode_head' for p in fitted.fresh)
  assert fitted.zeroed == [] and fitted.discarded == []
  _, classifier = vision.load_pretrained('mit_b0', path, img_size=64, **small)
  encoder = pretrained.flatten(fitted.variables['params']['backbone'])
  for key, value in pretrained.flatten(classifier['params']).items():
    if not key.startswith('head/'):
      np.testing.assert_array_equal(encoder[key], value)
  init = pretrained.flatten(pretrained.init_variables(module))
  for key in fitted.fresh:
    np.testing.assert_array_equal(pretrained.flatten(fitted.variables)[key], init[key])
