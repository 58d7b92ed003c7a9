"""ViT and hybrid-ViT checkpoints (HuggingFace transformers, timm) → flax variables.

Naming conventions recognised (detected from the keys):

* 'hf': `ViTForImageClassification` / `ViTModel`, in transformers 5.x naming
  (`vit.layers.N.attention.{q,k,v,o}_proj`, `vit.layers.N.mlp.fc{1,2}`) or
  the 4.x naming of the published checkpoints (`vit.encoder.layer.N.
  attention.attention.{query,key,value}`, `attention.output.dense`,
  `intermediate.dense`, `output.dense`). The hybrid's stem is a `BitModel`
  under `vit.embeddings.patch_embeddings.backbone.bit.` (ViTHybrid naming);
  `convert_bit` maps a bare `BitModel` state dict onto `vision.resnetv2`.
* 'google': the `.npz` naming of google-research/vision_transformer and
  big_vision (`vision.weights.vit_google`).
* 'timm': `VisionTransformer` (`cls_token`, `pos_embed`, `patch_embed.proj`,
  `blocks.N.attn.qkv` fused [3D, D], `blocks.N.attn.proj`, `blocks.N.mlp.fc{1,2}`,
  `norm` or `fc_norm`, `head`), hybrids with `patch_embed.backbone.{stem,stages}`.

Layouts: torch Linear weights are [out, in] and flax kernels [in, out]
(transpose); conv weights OIHW → HWIO; HF's separate q, k, v projections are
concatenated into our fused `qkv` (rows [q; k; v], as timm stores them).
Position embeddings are returned at the checkpoint's grid; `load_pretrained`
resizes them to the module's (`vision.resize`).

HuggingFace's ViT (and ViTHybrid) LayerNorms use ε = 1e-12 (`ViTConfig.
layer_norm_eps`, also in the published google/vit-* configs) where timm and
the paper's code use 1e-6: `default_overrides('hf')` sets `norm_eps=1e-12`,
so `load_pretrained` reproduces the HF model unless the caller passes
`norm_eps` (e.g. for a checkpoint trained with another config).
"""
from __future__ import annotations

import re
from typing import Any, Optional

import numpy as np

from vision.weights import vit_google

_HF_LEGACY = (
    ('vit.encoder.layer.', 'vit.layers.'),
    ('attention.attention.query.', 'attention.q_proj.'),
    ('attention.attention.key.', 'attention.k_proj.'),
    ('attention.attention.value.', 'attention.v_proj.'),
    ('attention.output.dense.', 'attention.o_proj.'),
    ('intermediate.dense.', 'mlp.fc1.'),
    ('output.dense.', 'mlp.fc2.'),
)
_HF_STEM = 'vit.embeddings.patch_embeddings.backbone.bit.'
_TIMM_STEM = 'patch_embed.backbone.'


def detect(tensors: dict[str, np.ndarray]) -> Optional[str]:
  """'hf', 'timm' or 'google' from the key names, None if this is not a ViT checkpoint."""
  keys = set(tensors)
  if vit_google.detect(tensors):
    return 'google'
  if any(k.startswith(('vit.embeddings.', 'embeddings.patch_embeddings.')) for k in keys):
    return 'hf'
  if 'cls_token' in keys and 'pos_embed' in keys and any(
      k.startswith('patch_embed.') for k in keys):
    return 'timm'
  return None


HF_OVERRIDES = {'norm_eps': 1e-12}


def default_overrides(fmt: str, tensors: dict[str, np.ndarray]) -> dict:
  """HF checkpoints imply HF's LayerNorm ε; timm and Google naming use ours (1e-6).

  A Google checkpoint with a `pre_logits` layer implies its `representation_size`.
  """
  if fmt == 'hf':
    return dict(HF_OVERRIDES)
  size = vit_google.representation_size(tensors) if fmt == 'google' else None
  return {'representation_size': size} if size else {}


def num_classes(tensors: dict[str, np.ndarray], fmt: str) -> Optional[int]:
  """Rows of the classifier weight (`classifier` in HF, `head` in timm and Google's)."""
  if fmt == 'google':
    return vit_google.num_classes(tensors)
  key = 'classifier.weight' if fmt == 'hf' else 'head.weight'
  return int(tensors[key].shape[0]) if key in tensors else None


def _normalise_hf(tensors: dict[str, np.ndarray]) -> dict[str, str]:
  """{5.x-style name: original key}; adds the `vit.` prefix of bare `ViTModel`s."""
  names = {}
  for key in tensors:
    name = key
    if name.startswith(('embeddings.', 'encoder.', 'layers.', 'layernorm.', 'pooler.')):
      name = 'vit.' + name
    if not name.startswith(_HF_STEM):
      for old, new in _HF_LEGACY:
        name = name.replace(old, new)
    names[name] = key
  return names


class _Reader:
  """Hands out tensors by canonical name and remembers which were used."""

  def __init__(self, tensors: dict[str, np.ndarray], names: dict[str, str]):
    self._tensors = tensors
    self._names = names
    self.used: set[str] = set()

  def has(self, name: str) -> bool:
    return name in self._names

  def get(self, name: str) -> Optional[np.ndarray]:
    if name not in self._names:
      return None
    key = self._names[name]
    self.used.add(key)
    return np.asarray(self._tensors[key], dtype=np.float32)

  def unused(self) -> list[str]:
    return sorted(set(self._tensors) - self.used)


def _put(tree: dict, path: str, value: Optional[np.ndarray]) -> None:
  if value is None:
    return
  *parents, leaf = path.split('/')
  for p in parents:
    tree = tree.setdefault(p, {})
  tree[leaf] = value


def _linear(tree: dict, path: str, w: Optional[np.ndarray], b: Optional[np.ndarray]) -> None:
  _put(tree, f'{path}/kernel', None if w is None else w.T)
  _put(tree, f'{path}/bias', b)


def _norm(tree: dict, path: str, w: Optional[np.ndarray], b: Optional[np.ndarray]) -> None:
  _put(tree, f'{path}/scale', w)
  _put(tree, f'{path}/bias', b)


def _conv(w: Optional[np.ndarray]) -> Optional[np.ndarray]:
  return None if w is None else w.transpose(2, 3, 1, 0)  # OIHW → HWIO


def _cat(*parts: Optional[np.ndarray]) -> Optional[np.ndarray]:
  return None if any(p is None for p in parts) else np.concatenate(parts, axis=0)


def convert_bit(tensors: dict[str, np.ndarray], prefix: str = '',
                used: Optional[set[str]] = None) -> dict:
  """HF `BitModel` (bottleneck, SAME padding) weights under `prefix` → `ResNetV2` params."""
  params: dict = {}
  take = lambda k: _take(tensors, prefix + k, used)  # noqa: E731
  _put(params, 'stem_conv/kernel', _conv(take('embedder.convolution.weight')))
  _norm(params, 'stem_norm', take('embedder.norm.weight'), take('embedder.norm.bias'))
  pattern = re.compile(re.escape(prefix) + r'encoder\.stages\.(\d+)\.layers\.(\d+)\.(.+)\.weight$')
  for key in tensors:
    m = pattern.match(key)
    if not m:
      continue
    i, j, layer = m.groups()
    block = f'stages_{i}_{j}'
    base = f'{prefix}encoder.stages.{i}.layers.{j}.{layer}'
    if layer.startswith('conv') or layer == 'downsample.conv':
      _put(params, f'{block}/{layer.replace(".", "_")}/kernel', _conv(take(base[len(prefix):] + '.weight')))
    else:
      _norm(params, f'{block}/{layer.replace(".", "_")}',
            take(base[len(prefix):] + '.weight'), take(base[len(prefix):] + '.bias'))
  return params


def _take(tensors: dict[str, np.ndarray], key: str, used: Optional[set[str]]) -> Optional[np.ndarray]:
  if key not in tensors:
    return None
  if used is not None:
    used.add(key)
  return np.asarray(tensors[key], dtype=np.float32)


def _convert_timm_stem(tensors: dict[str, np.ndarray], used: set[str]) -> dict:
  """timm `ResNetV2` (patch_embed.backbone.{stem,stages}) → `ResNetV2` params."""
  params: dict = {}
  take = lambda k: _take(tensors, _TIMM_STEM + k, used)  # noqa: E731
  _put(params, 'stem_conv/kernel', _conv(take('stem.conv.weight')))
  _norm(params, 'stem_norm', take('stem.norm.weight'), take('stem.norm.bias'))
  pattern = re.compile(re.escape(_TIMM_STEM) + r'stages\.(\d+)\.blocks\.(\d+)\.(.+)\.weight$')
  for key in tensors:
    m = pattern.match(key)
    if not m:
      continue
    i, j, layer = m.groups()
    base = f'stages.{i}.blocks.{j}.{layer}'
    path = f'stages_{i}_{j}/{layer.replace(".", "_")}'
    if layer.startswith('conv') or layer == 'downsample.conv':
      _put(params, f'{path}/kernel', _conv(take(base + '.weight')))
    else:
      _norm(params, path, take(base + '.weight'), take(base + '.bias'))
  return params


def _block_hf(r: _Reader, i: int) -> dict:
  p = f'vit.layers.{i}.'
  block: dict = {}
  _norm(block, 'norm1', r.get(p + 'layernorm_before.weight'), r.get(p + 'layernorm_before.bias'))
  qkv_w = _cat(*(r.get(f'{p}attention.{c}_proj.weight') for c in 'qkv'))
  qkv_b = _cat(*(r.get(f'{p}attention.{c}_proj.bias') for c in 'qkv'))
  _linear(block, 'attn/qkv', qkv_w, qkv_b)
  _linear(block, 'attn/proj', r.get(p + 'attention.o_proj.weight'), r.get(p + 'attention.o_proj.bias'))
  _norm(block, 'norm2', r.get(p + 'layernorm_after.weight'), r.get(p + 'layernorm_after.bias'))
  for fc in ('fc1', 'fc2'):
    _linear(block, f'mlp/{fc}', r.get(f'{p}mlp.{fc}.weight'), r.get(f'{p}mlp.{fc}.bias'))
  return block


def _block_timm(r: _Reader, i: int) -> dict:
  p = f'blocks.{i}.'
  block: dict = {}
  for norm in ('norm1', 'norm2'):
    _norm(block, norm, r.get(f'{p}{norm}.weight'), r.get(f'{p}{norm}.bias'))
  for src, dst in (('attn.qkv', 'attn/qkv'), ('attn.proj', 'attn/proj'),
                   ('mlp.fc1', 'mlp/fc1'), ('mlp.fc2', 'mlp/fc2')):
    _linear(block, dst, r.get(f'{p}{src}.weight'), r.get(f'{p}{src}.bias'))
  return block


def _block_count(r: _Reader, pattern: str) -> int:
  regex = re.compile(pattern)
  found = [int(m.group(1)) for k in r._names if (m := regex.match(k))]  # pylint: disable=protected-access
  return max(found) + 1 if found else 0


def to_flax(tensors: dict[str, np.ndarray], fmt: str, module: Any) -> dict:
  """Flax variables of a `VisionTransformer` (plain or hybrid) from a ViT checkpoint."""
  if fmt == 'google':
    return vit_google.to_flax(tensors, module)
  if fmt == 'hf':
    r = _Reader(tensors, _normalise_hf(tensors))
    pre = 'vit.embeddings.'
    cls, pos = r.get(pre + 'cls_token'), r.get(pre + 'position_embeddings')
    patch_w = r.get(pre + 'patch_embeddings.projection.weight')
    patch_b = r.get(pre + 'patch_embeddings.projection.bias')
    depth = _block_count(r, r'vit\.layers\.(\d+)\.')
    blocks = [_block_hf(r, i) for i in range(depth)]
    final = ('norm', r.get('vit.layernorm.weight'), r.get('vit.layernorm.bias'))
    head = (r.get('classifier.weight'), r.get('classifier.bias'))
    stem = convert_bit(tensors, _HF_STEM, r.used) if any(
        k.startswith(_HF_STEM) for k in tensors) else None
  elif fmt == 'timm':
    r = _Reader(tensors, {k: k for k in tensors})
    cls, pos = r.get('cls_token'), r.get('pos_embed')
    patch_w, patch_b = r.get('patch_embed.proj.weight'), r.get('patch_embed.proj.bias')
    depth = _block_count(r, r'blocks\.(\d+)\.')
    blocks = [_block_timm(r, i) for i in range(depth)]
    final = (('fc_norm', r.get('fc_norm.weight'), r.get('fc_norm.bias')) if r.has('fc_norm.weight')
             else ('norm', r.get('norm.weight'), r.get('norm.bias')))
    head = (r.get('head.weight'), r.get('head.bias'))
    stem = _convert_timm_stem(tensors, r.used) if any(
        k.startswith(_TIMM_STEM) for k in tensors) else None
  else:
    raise ValueError(f'Unknown ViT checkpoint format {fmt!r}; valid: hf, timm, google.')

  params: dict = {}
  if stem:
    params['stem'] = stem
  _put(params, 'patch_embed/kernel', _conv(patch_w))
  _put(params, 'patch_embed/bias', patch_b)
  _put(params, 'cls_token', cls)
  _put(params, 'pos_embed', pos)
  for i, block in enumerate(blocks):
    params[f'blocks_{i}'] = block
  _norm(params, final[0], final[1], final[2])
  _linear(params, 'head', *head)
  return {'params': params, '__unused__': r.unused()}
