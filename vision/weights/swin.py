"""Swin checkpoints (HuggingFace transformers, timm, original) → flax variables.

Accepted namings, detected from the keys:

* 'hf': `SwinForImageClassification` / `SwinModel` / `SwinBackbone`, both the
  transformers 5.x names (`attention.{q,k,v,o}_proj`, `mlp.fc1`,
  `attention.relative_position_bias.relative_position_bias_table`) and the
  4.x names of the checkpoints on the Hub (`attention.self.{query,key,value}`,
  `attention.output.dense`, `intermediate.dense`, `output.dense`,
  `attention.self.relative_position_bias_table`); the `swin.` prefix is optional.
  Patch merging sits at the end of stage i (`encoder.layers.i.downsample`).
* 'timm': timm ≥ 0.9 `SwinTransformer` (`layers.i.downsample` at the *start* of
  stage i ≥ 1, head `head.fc`).
* 'original': the Microsoft repository and timm < 0.9 (`layers.i.downsample` at
  the end of stage i, head `head`).
  timm/original share `patch_embed.{proj,norm}`, `layers.i.blocks.j.{norm1,
  attn.qkv, attn.proj, attn.relative_position_bias_table, norm2, mlp.fc1,
  mlp.fc2}`, `norm`.

The deterministic buffers `relative_position_index` and `attn_mask` are
skipped (the model recomputes them). Layout changes: Linear (out, in) →
kernel (in, out); Conv (O, I, kh, kw) → (kh, kw, I, O); HF's separate q/k/v
are concatenated in the [q | k | v] order of the fused `qkv` kernel.
Relative-bias tables are copied as they are: their shape depends only on the
window (see `vision.swin`), and `load_pretrained` resizes them bicubically
for a model with another `window_size` (`vision.resize`).
"""
from __future__ import annotations

import re
from typing import Any, Optional

import flax
import numpy as np

_BUFFERS = ('relative_position_index', 'attn_mask')

# HF 4.x → 5.x names (the renames of transformers' own conversion mapping).
_HF_LEGACY = (
    ('attention.self.query.', 'attention.q_proj.'),
    ('attention.self.key.', 'attention.k_proj.'),
    ('attention.self.value.', 'attention.v_proj.'),
    ('attention.self.relative_position_bias_table',
     'attention.relative_position_bias.relative_position_bias_table'),
    ('attention.output.dense.', 'attention.o_proj.'),
    ('intermediate.dense.', 'mlp.fc1.'),
    ('output.dense.', 'mlp.fc2.'),
)


def detect(tensors: dict[str, np.ndarray]) -> Optional[str]:
  """'hf', 'timm' or 'original' for a Swin checkpoint, else None."""
  keys = list(tensors)
  if any(re.search(r'(^|\.)encoder\.layers\.\d+\.blocks\.\d+\.', k) for k in keys) and any(
      'embeddings.patch_embeddings.projection.' in k for k in keys):
    return 'hf'
  if 'patch_embed.proj.weight' in tensors and any(
      re.match(r'layers\.\d+\.blocks\.\d+\.attn\.', k) for k in keys):
    if 'layers.0.downsample.reduction.weight' in tensors or 'head.weight' in tensors:
      return 'original'
    return 'timm'
  return None


def num_classes(tensors: dict[str, np.ndarray], fmt: str) -> Optional[int]:
  """Width of the classifier stored in the checkpoint (None: no head)."""
  key = {'hf': 'classifier.weight', 'timm': 'head.fc.weight', 'original': 'head.weight'}[fmt]
  return int(tensors[key].shape[0]) if key in tensors else None


def _canonical(tensors: dict[str, np.ndarray], fmt: str) -> tuple[dict[str, np.ndarray], list[str]]:
  """Renames to one torch-style naming (timm blocks, downsample at stage end).

  Returns:
    ({canonical key: array}, [original keys that mean nothing to Swin]).
  """
  out, unused = {}, []
  if fmt == 'hf':
    qkv: dict[str, dict[str, np.ndarray]] = {}
    for key, value in tensors.items():
      k = key[len('swin.'):] if key.startswith('swin.') else key
      if any(b in k for b in _BUFFERS):
        continue
      for old, new in _HF_LEGACY:
        k = k.replace(old, new)
      m = re.match(r'encoder\.layers\.(\d+)\.blocks\.(\d+)\.(.*)$', k)
      if m:
        i, j, rest = m.groups()
        prefix = f'layers.{i}.blocks.{j}.'
        q = re.match(r'attention\.([qkv])_proj\.(weight|bias)$', rest)
        if q:
          qkv.setdefault(f'{prefix}attn.qkv.{q.group(2)}', {})[q.group(1)] = value
          continue
        rest = (rest.replace('layernorm_before.', 'norm1.').replace('layernorm_after.', 'norm2.')
                .replace('attention.o_proj.', 'attn.proj.')
                .replace('attention.relative_position_bias.relative_position_bias_table',
                         'attn.relative_position_bias_table'))
        out[prefix + rest] = value
        continue
      m = re.match(r'encoder\.layers\.(\d+)\.downsample\.(.*)$', k)
      m2 = re.match(r'hidden_states_norms\.stage(\d+)\.(.*)$', k)
      if m:
        out[f'layers.{m.group(1)}.downsample.{m.group(2)}'] = value
      elif m2:
        out[f'feature_norms.{int(m2.group(1)) - 1}.{m2.group(2)}'] = value
      elif k.startswith('embeddings.patch_embeddings.projection.'):
        out['patch_embed.proj.' + k.rsplit('.', 1)[1]] = value
      elif k.startswith('embeddings.norm.'):
        out['patch_embed.norm.' + k.rsplit('.', 1)[1]] = value
      elif k.startswith('layernorm.'):
        out['norm.' + k.rsplit('.', 1)[1]] = value
      elif k.startswith('classifier.'):
        out['head.' + k.rsplit('.', 1)[1]] = value
      else:
        unused.append(key)
    for k, parts in qkv.items():
      if set(parts) != {'q', 'k', 'v'}:
        unused.extend(f'{k} ({p})' for p in parts)
        continue
      out[k] = np.concatenate([parts['q'], parts['k'], parts['v']], axis=0)
    return out, unused

  for key, value in tensors.items():
    if any(b in key for b in _BUFFERS):
      continue
    k = key
    if fmt == 'timm':
      m = re.match(r'layers\.(\d+)\.downsample\.(.*)$', k)
      if m:
        k = f'layers.{int(m.group(1)) - 1}.downsample.{m.group(2)}'
      k = k.replace('head.fc.', 'head.')
    out[k] = value
  return out, unused


def to_flax(tensors: dict[str, np.ndarray], fmt: str, module: Any = None) -> dict:
  """Flax variables {'params': ...} for `vision.swin.SwinTransformer`.

  `module` is not needed: every shape follows from the checkpoint, and the
  loader checks them against the model. Keys that are not Swin weights are
  returned under '__unused__'.
  """
  del module
  canonical, unused = _canonical(tensors, fmt)
  params: dict[tuple[str, ...], np.ndarray] = {}

  def linear(path: tuple[str, ...], prefix: str) -> None:
    w = canonical.pop(prefix + '.weight')
    params[path + ('kernel',)] = np.asarray(w).T
    if prefix + '.bias' in canonical:
      params[path + ('bias',)] = canonical.pop(prefix + '.bias')

  def norm(path: tuple[str, ...], prefix: str) -> None:
    params[path + ('scale',)] = canonical.pop(prefix + '.weight')
    params[path + ('bias',)] = canonical.pop(prefix + '.bias')

  for key in sorted(canonical):
    if key not in canonical:
      continue  # consumed with its sibling
    try:
      if key.startswith('patch_embed.proj.'):
        params[('patch_embed_proj', 'kernel')] = np.transpose(
            canonical.pop('patch_embed.proj.weight'), (2, 3, 1, 0))
        params[('patch_embed_proj', 'bias')] = canonical.pop('patch_embed.proj.bias')
      elif key.startswith('patch_embed.norm.'):
        norm(('patch_embed_norm',), 'patch_embed.norm')
      elif m := re.match(r'layers\.(\d+)\.blocks\.(\d+)\.(.*)$', key):
        i, j, rest = m.groups()
        block = f'layers_{i}_blocks_{j}'
        prefix = f'layers.{i}.blocks.{j}.'
        if rest == 'attn.relative_position_bias_table':
          params[(block, 'attn', 'relative_position_bias_table')] = canonical.pop(key)
        elif rest.startswith(('norm1.', 'norm2.')):
          norm((block, rest[:5]), prefix + rest[:5])
        elif rest.startswith(('attn.qkv.', 'attn.proj.', 'mlp.fc1.', 'mlp.fc2.')):
          owner, layer = rest.split('.')[:2]
          linear((block, owner, layer), f'{prefix}{owner}.{layer}')
        else:
          unused.append(key)
          canonical.pop(key)
      elif m := re.match(r'layers\.(\d+)\.downsample\.(norm|reduction)\.', key):
        i, layer = m.groups()
        if layer == 'norm':
          norm((f'layers_{i}_downsample', 'norm'), f'layers.{i}.downsample.norm')
        else:
          linear((f'layers_{i}_downsample', 'reduction'), f'layers.{i}.downsample.reduction')
      elif m := re.match(r'feature_norms\.(\d+)\.', key):
        norm((f'feature_norms_{m.group(1)}',), f'feature_norms.{m.group(1)}')
      elif key.startswith('norm.'):
        norm(('norm',), 'norm')
      elif key.startswith('head.'):
        linear(('head',), 'head')
      else:
        unused.append(key)
        canonical.pop(key)
    except KeyError as e:  # a weight without its bias (or the reverse)
      unused.append(f'{key} (no partner {e.args[0]})')
      canonical.pop(key, None)

  variables = {'params': flax.traverse_util.unflatten_dict(params)}
  variables['__unused__'] = unused
  return variables
