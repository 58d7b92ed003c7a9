"""ViT and R50+ViT checkpoints in Google's `.npz` naming → flax variables.

The naming of google-research/vision_transformer and big_vision (the files
published with the ViT paper and with AugReg, "How to train your ViT?"):
flat keys joined by '/', already flax layouts (kernels [in, out], convs HWIO).

    embedding/{kernel [P, P, C, D], bias}              → patch_embed
    cls [1, 1, D]                                      → cls_token
    Transformer/posembed_input/pos_embedding           → pos_embed
    Transformer/encoderblock_N/LayerNorm_0, LayerNorm_2 → blocks_N/norm1, norm2
      (flax-linen names LayerNorm_0, LayerNorm_1 alike: the first is norm1)
    …/MultiHeadDotProductAttention_1/{query,key,value}/kernel [D, heads, d],
      bias [heads, d]                                  → attn/qkv ([q | k | v] columns)
    …/MultiHeadDotProductAttention_1/out/kernel [heads, d, D], bias [D] → attn/proj
    …/MlpBlock_3/Dense_0, Dense_1                      → mlp/fc1, fc2
    Transformer/encoder_norm                           → norm
    pre_logits/{kernel, bias} (optional)               → pre_logits (tanh layer)
    head/{kernel, bias}                                → head

big_vision's scanned encoders store one `Transformer/encoderblock/…` tree with
a leading [L] axis; it is split into blocks 0 … L−1.

The hybrid's ResNet (BiT) root and stages:

    conv_root/kernel, gn_root/{scale, bias}            → stem/stem_conv, stem_norm
    blockS/unitU/conv{1,2,3}/kernel, gn{1,2,3}/*       → stem/stages_{S−1}_{U−1}/conv{n},
                                                         norm{n}
    blockS/unitU/conv_proj/kernel, gn_proj/*           → …/downsample_conv, downsample_norm

GroupNorm parameters of pre-linen files are stored as [1, 1, 1, C] and are
flattened. Numerics: our ResNetV2 standardises kernels as HF's BitModel and
timm do ((W − μ)/√(σ² + 1e-8), GroupNorm ε = 1e-5) where vit_jax uses
(W − μ)/(σ + 1e-5) and ε = 1e-6; LayerNorm ε is 1e-6 in both.
"""
from __future__ import annotations

import re
from typing import Any, Optional

import numpy as np

_BLOCK = re.compile(r'^Transformer/encoderblock_(\d+)/')
_SCANNED = 'Transformer/encoderblock/'
_UNIT = re.compile(r'^block(\d+)/unit(\d+)/(conv\d|conv_proj|gn\d|gn_proj)/(kernel|scale|bias)$')


def detect(tensors: dict[str, np.ndarray]) -> bool:
  """True for a checkpoint in Google's ViT naming."""
  return 'Transformer/posembed_input/pos_embedding' in tensors or (
      'embedding/kernel' in tensors and any(k.startswith('Transformer/') for k in tensors))


def num_classes(tensors: dict[str, np.ndarray]) -> Optional[int]:
  return int(tensors['head/kernel'].shape[-1]) if 'head/kernel' in tensors else None


def representation_size(tensors: dict[str, np.ndarray]) -> Optional[int]:
  return int(tensors['pre_logits/kernel'].shape[-1]) if 'pre_logits/kernel' in tensors else None


def _unscan(tensors: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
  """`Transformer/encoderblock/…` [L, …] → `Transformer/encoderblock_i/…`."""
  out = {}
  for key, value in tensors.items():
    if key.startswith(_SCANNED):
      rest = key[len(_SCANNED):]
      for i in range(value.shape[0]):
        out[f'Transformer/encoderblock_{i}/{rest}'] = value[i]
    else:
      out[key] = value
  return out


def _ordinal_names(keys: list[str], prefix: str, kind: str) -> list[str]:
  """Sub-module names `kind_<n>` under `prefix`, sorted by n."""
  found = {k[len(prefix):].split('/')[0] for k in keys if k.startswith(prefix)}
  return sorted((n for n in found if re.fullmatch(kind + r'_\d+', n)),
                key=lambda n: int(n.rsplit('_', 1)[1]))


def _put(tree: dict, path: str, value: np.ndarray) -> None:
  *parents, leaf = path.split('/')
  for p in parents:
    tree = tree.setdefault(p, {})
  tree[leaf] = value


def to_flax(tensors: dict[str, np.ndarray], module: Any = None) -> dict:
  """Flax variables of a `VisionTransformer` (plain or hybrid); unused keys under '__unused__'."""
  del module  # every shape follows from the checkpoint; the loader checks them
  tensors = {k: np.asarray(v, np.float32) for k, v in _unscan(tensors).items()}
  used: set[str] = set()
  params: dict = {}

  def take(key: str, path: str, fn=lambda x: x) -> None:
    if key in tensors:
      used.add(key)
      _put(params, path, fn(tensors[key]))

  for ours, theirs in (('patch_embed', 'embedding'), ('norm', 'Transformer/encoder_norm'),
                       ('pre_logits', 'pre_logits'), ('head', 'head')):
    for leaf in ('kernel', 'bias', 'scale'):
      take(f'{theirs}/{leaf}', f'{ours}/{leaf}')
  take('cls', 'cls_token')
  take('Transformer/posembed_input/pos_embedding', 'pos_embed')

  keys = list(tensors)
  blocks = sorted({int(m.group(1)) for k in keys if (m := _BLOCK.match(k))})
  for i in blocks:
    pre, out = f'Transformer/encoderblock_{i}/', f'blocks_{i}/'
    for name, norm in zip(_ordinal_names(keys, pre, 'LayerNorm'), ('norm1', 'norm2')):
      for leaf in ('scale', 'bias'):
        take(f'{pre}{name}/{leaf}', f'{out}{norm}/{leaf}')
    for att in _ordinal_names(keys, pre, 'MultiHeadDotProductAttention')[:1]:
      a = f'{pre}{att}/'
      qkv = [f'{a}{c}/kernel' for c in ('query', 'key', 'value')]
      if all(k in tensors for k in qkv):
        used.update(qkv)
        _put(params, f'{out}attn/qkv/kernel', np.concatenate(
            [tensors[k].reshape(tensors[k].shape[0], -1) for k in qkv], axis=1))
      bias = [f'{a}{c}/bias' for c in ('query', 'key', 'value')]
      if all(k in tensors for k in bias):
        used.update(bias)
        _put(params, f'{out}attn/qkv/bias', np.concatenate([tensors[k].reshape(-1) for k in bias]))
      take(f'{a}out/kernel', f'{out}attn/proj/kernel',
           lambda w: w.reshape(-1, w.shape[-1]))  # [heads, d, D] → [D, D]
      take(f'{a}out/bias', f'{out}attn/proj/bias')
    for mlp in _ordinal_names(keys, pre, 'MlpBlock')[:1]:
      for dense, fc in (('Dense_0', 'fc1'), ('Dense_1', 'fc2')):
        for leaf in ('kernel', 'bias'):
          take(f'{pre}{mlp}/{dense}/{leaf}', f'{out}mlp/{fc}/{leaf}')

  flat = lambda x: x.reshape(-1)  # noqa: E731  (pre-linen GroupNorm [1, 1, 1, C])
  take('conv_root/kernel', 'stem/stem_conv/kernel')
  for leaf in ('scale', 'bias'):
    take(f'gn_root/{leaf}', f'stem/stem_norm/{leaf}', flat)
  names = {'conv_proj': 'downsample_conv', 'gn_proj': 'downsample_norm'}
  for key in keys:
    m = _UNIT.match(key)
    if m:
      stage, unit, layer, leaf = m.groups()
      layer = names.get(layer, layer.replace('gn', 'norm'))
      take(key, f'stem/stages_{int(stage) - 1}_{int(unit) - 1}/{layer}/{leaf}',
           flat if leaf != 'kernel' else (lambda x: x))
  return {'params': params, '__unused__': sorted(set(tensors) - used)}
