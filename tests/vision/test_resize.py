"""Checkpoint geometry (`vision.resize`): torch-exact resizing and HF parity at new sizes.

Oracles: torch `interpolate` (bicubic / bilinear, align_corners=False) on the
same arrays; HuggingFace `ViTForImageClassification(interpolate_pos_encoding=
True)` at new resolutions (square and not); HuggingFace PVT with the original
PVT's `_get_pos_embed` resizing (HF's own `PvtPatchEmbeddings.
interpolate_pos_encoding` reshapes the stored grid to the *new* size before
interpolating and fails at any other resolution); HuggingFace Swin built at
the new window with its bias tables resized by torch bicubic, as the Swin
authors' `load_pretrained` does.
"""
from __future__ import annotations

import math

import jax
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.numpy import save_file
from transformers import BitConfig
from transformers import BitModel
from transformers import PvtConfig
from transformers import PvtForImageClassification
from transformers import SwinConfig
from transformers import SwinForImageClassification
from transformers import ViTConfig
from transformers import ViTForImageClassification
from transformers.models.pvt import modeling_pvt

import vision
from vision import resize

TOL = 1e-4


def state_dict(model: torch.nn.Module) -> dict[str, np.ndarray]:
  return {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}


def randomize(model: torch.nn.Module, seed: int) -> None:
  """Unit-scale weights: HF's init leaves too little signal (zero tables, LN at (1, 0))."""
  gen = torch.Generator().manual_seed(seed)
  with torch.no_grad():
    for name, p in model.named_parameters():
      noise = torch.randn(p.shape, generator=gen)
      if p.ndim == 1:
        p.copy_((1.0 if name.endswith('weight') else 0.0) + 0.2 * noise)
      elif p.ndim in (2, 4) and 'relative_position_bias_table' not in name:
        p.copy_(noise / math.sqrt(p[0].numel()))
      else:  # position embeddings, class token, bias tables
        p.copy_(0.5 * noise)


def _nhwc(x: torch.Tensor) -> np.ndarray:
  return x.permute(0, 2, 3, 1).numpy()


def _logits(module, variables, x: torch.Tensor) -> np.ndarray:
  return np.asarray(jax.jit(lambda v, x: module.apply(v, x))(variables, _nhwc(x)))


def _images(shape, seed) -> torch.Tensor:
  return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------- resampling vs torch


@pytest.mark.parametrize('method', ['bicubic', 'bilinear'])
@pytest.mark.parametrize('old,new', [((4, 4), (7, 7)), ((7, 7), (3, 3)), ((5, 6), (9, 4)),
                                     ((1, 3), (2, 5))])
def test_resize_grid_matches_torch(method, old, new):
  x = np.random.default_rng(0).standard_normal((*old, 5)).astype(np.float32)
  want = F.interpolate(torch.from_numpy(x).permute(2, 0, 1)[None], size=new, mode=method,
                       align_corners=False)[0].permute(1, 2, 0).numpy()
  np.testing.assert_allclose(resize.resize_grid(x, new, method), want, atol=1e-5, rtol=0)


@pytest.mark.parametrize('old,new', [(7, 12), (12, 7), (3, 4)])
def test_swin_table_matches_torch_bicubic(old, new):
  """(2M−1)² × heads tables, plain and with a scanned leading [L] axis."""
  heads = 3
  rng = np.random.default_rng(1)
  table = rng.standard_normal((2, (2 * old - 1) ** 2, heads)).astype(np.float32)
  side, new_side = 2 * old - 1, 2 * new - 1
  for layer in range(2):
    want = F.interpolate(torch.from_numpy(table[layer]).permute(1, 0).reshape(1, heads, side, side),
                         size=(new_side, new_side), mode='bicubic', align_corners=False)
    want = want.reshape(heads, new_side ** 2).permute(1, 0).numpy()
    got = resize.resize_relative_position_bias_table(table[layer], new)
    assert got.shape == (new_side ** 2, heads)
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)
    stacked = resize.resize_relative_position_bias_table(table, new)[layer]
    np.testing.assert_allclose(stacked, got, atol=1e-6, rtol=0)


def test_same_size_is_returned_unchanged():
  pos = np.random.default_rng(2).standard_normal((1, 17, 4)).astype(np.float32)
  assert resize.resize_pos_embed(pos, (4, 4)) is pos
  with pytest.raises(ValueError, match='not a square grid'):
    resize.resize_pos_embed(pos[:, :15], (4, 4))


# ---------------------------------------------------------------- ViT / hybrid vs HF


VIT_SMALL = dict(img_size=32, patch_size=8, embed_dim=48, depth=2, num_heads=3)


def hf_vit_model(seed: int = 0) -> ViTForImageClassification:
  """A random HF ViT matching VIT_SMALL (5 classes, HF's LayerNorm ε)."""
  torch.manual_seed(seed)
  model = ViTForImageClassification(ViTConfig(
      hidden_size=48, num_hidden_layers=2, num_attention_heads=3, intermediate_size=192,
      image_size=32, patch_size=8, num_labels=5, hidden_act='gelu')).eval()
  randomize(model, seed)
  return model


@pytest.fixture(scope='module')
def hf_vit(tmp_path_factory):
  model = hf_vit_model()
  path = str(tmp_path_factory.mktemp('vit') / 'vit.safetensors')
  save_file(state_dict(model), path)
  return model, path


@pytest.mark.parametrize('size', [(48, 48), (24, 24), (48, 32)])
def test_vit_new_resolution_equals_hf_interpolate_pos_encoding(hf_vit, size):
  model, path = hf_vit
  x = _images((2, 3, *size), seed=3)
  with torch.no_grad():
    want = model(x, interpolate_pos_encoding=True).logits.numpy()
  module, variables = vision.load_pretrained('vit_tiny_patch16_224', path,
                                             **{**VIT_SMALL, 'img_size': size})
  grid = (size[0] // 8, size[1] // 8)
  assert variables['params']['pos_embed'].shape == (1, 1 + grid[0] * grid[1], 48)
  np.testing.assert_allclose(_logits(module, variables, x), want, atol=TOL, rtol=0)


def test_hybrid_new_resolution_equals_hf_interpolate_pos_encoding(tmp_path):
  """BiT stem + ViT over its 1×1 patches; the 3×3 grid of 35 px becomes 4×4 at 51 px."""
  torch.manual_seed(1)
  bit = BitModel(BitConfig(layer_type='bottleneck', global_padding='SAME', depths=[1, 1, 1],
                           hidden_sizes=[256, 512, 1024],
                           embedding_dynamic_padding=True)).eval()
  head = ViTForImageClassification(ViTConfig(
      hidden_size=48, num_hidden_layers=2, num_attention_heads=3, intermediate_size=192,
      image_size=3, patch_size=1, num_channels=1024, num_labels=5, hidden_act='gelu')).eval()
  randomize(head, 2)
  stem = 'vit.embeddings.patch_embeddings.backbone.bit.'
  state = {stem + k: v for k, v in state_dict(bit).items()}
  state.update(state_dict(head))
  path = str(tmp_path / 'hybrid.safetensors')
  save_file(state, path)
  x = _images((2, 3, 51, 51), seed=4)
  with torch.no_grad():
    want = head(bit(x).last_hidden_state, interpolate_pos_encoding=True).logits.numpy()
  module, variables = vision.load_pretrained(
      'vit_base_r50_s16_224', path, img_size=51, hybrid_depths=(1, 1, 1), embed_dim=48,
      depth=2, num_heads=3)
  assert module.grid_size() == (4, 4)
  np.testing.assert_allclose(_logits(module, variables, x), want, atol=TOL, rtol=0)


# ---------------------------------------------------------------- PVT


def _original_pvt_pos_embed(self, embeddings, height, width):
  """The original PVT `_get_pos_embed`: the stored (square) grid, bilinear to (H, W)."""
  side = int(round(embeddings.shape[1] ** 0.5))
  grid = embeddings.reshape(1, side, side, -1).permute(0, 3, 1, 2)
  grid = F.interpolate(grid, size=(height, width), mode='bilinear')
  return grid.reshape(1, -1, height * width).permute(0, 2, 1)


def test_pvt_new_resolution_equals_original_resizing(tmp_path, monkeypatch):
  cfg = dict(image_size=64, hidden_sizes=[16, 32, 48, 64], depths=[1, 1, 1, 1],
             num_attention_heads=[1, 2, 3, 4], num_labels=7)
  torch.manual_seed(0)
  model = PvtForImageClassification(PvtConfig(**cfg)).eval()
  randomize(model, 5)
  path = str(tmp_path / 'pvt.safetensors')
  save_file(state_dict(model), path)
  monkeypatch.setattr(modeling_pvt.PvtPatchEmbeddings, 'interpolate_pos_encoding',
                      _original_pvt_pos_embed)
  x = _images((2, 3, 96, 80), seed=6)
  with torch.no_grad():
    want = model(x).logits.numpy()
  module, variables = vision.load_pretrained(
      'pvt_tiny', path, img_size=(96, 80), embed_dims=(16, 32, 48, 64), depths=(1, 1, 1, 1),
      num_heads=(1, 2, 3, 4))
  params = variables['params']
  assert params['pos_embed1'].shape == (1, 24 * 20, 16)
  assert params['pos_embed4'].shape == (1, 1 + 3 * 2, 64)
  stored = state_dict(model)['pvt.encoder.patch_embeddings.3.position_embeddings']
  np.testing.assert_array_equal(params['pos_embed4'][:, 0], stored[:, 0])  # class token kept
  np.testing.assert_allclose(_logits(module, variables, x), want, atol=TOL, rtol=0)


# ---------------------------------------------------------------- Swin


SWIN = dict(patch_size=2, embed_dim=16, depths=(2, 2), num_heads=(1, 2))


def _hf_swin(img_size: int, window: int, seed: int) -> SwinForImageClassification:
  torch.manual_seed(seed)
  return SwinForImageClassification(SwinConfig(
      image_size=img_size, patch_size=2, embed_dim=16, depths=[2, 2], num_heads=[1, 2],
      window_size=window, num_labels=4)).eval()


@pytest.mark.parametrize('scan', [False, True])
def test_swin_new_window_equals_hf_with_torch_resized_tables(tmp_path, scan):
  """Window 3 → 5 at 40 px (stages of 20 and 10 tokens): tables 5² → 9² rows."""
  source = _hf_swin(24, 3, seed=0)
  randomize(source, 7)
  path = str(tmp_path / 'swin.safetensors')
  save_file(state_dict(source), path)
  target = _hf_swin(40, 5, seed=1)
  state = state_dict(source)
  with torch.no_grad():
    for name, p in target.state_dict().items():
      if 'relative_position_index' in name:
        continue
      value = torch.from_numpy(state[name])
      if name.endswith('relative_position_bias_table'):
        heads = value.shape[1]
        value = F.interpolate(value.permute(1, 0).reshape(1, heads, 5, 5), size=(9, 9),
                              mode='bicubic', align_corners=False)
        value = value.reshape(heads, 81).permute(1, 0)
      p.copy_(value)
  x = _images((2, 3, 40, 40), seed=8)
  with torch.no_grad():
    want = target(x).logits.numpy()
  module, variables = vision.load_pretrained('swin_tiny_patch4_window7_224', path, img_size=40,
                                             window_size=5, scan_blocks=scan, **SWIN)
  np.testing.assert_allclose(_logits(module, variables, x), want, atol=TOL, rtol=0)


def test_swin_absolute_pos_embed_resized_bicubic():
  params = {'absolute_pos_embed': np.random.default_rng(3).standard_normal((1, 16, 8))}
  module = vision.create_model('swin_tiny_patch4_window7_224', img_size=24, **SWIN)
  out, resized = resize.adapt(params, module, 'swin')
  want = F.interpolate(torch.from_numpy(params['absolute_pos_embed'].reshape(4, 4, 8)).permute(
      2, 0, 1)[None], size=(12, 12), mode='bicubic', align_corners=False)
  np.testing.assert_allclose(out['absolute_pos_embed'].reshape(12, 12, 8),
                             want[0].permute(1, 2, 0).numpy(), atol=1e-6)
  assert resized == ['absolute_pos_embed']
