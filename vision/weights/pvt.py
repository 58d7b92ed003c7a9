"""PVT v1 checkpoints → flax variables of `vision.pvt.PVT`.

Two namings are recognised:

* 'hf': HuggingFace `PvtForImageClassification` / `PvtModel`
  (`pvt.encoder.patch_embeddings.{i}.projection`, `pvt.encoder.block.{i}.{j}.
  attention.self.{query,key,value}`, …, `classifier`).
* 'original': the authors' repository (whai362/PVT `classification/pvt.py`:
  `patch_embed{i}.proj`, `pos_embed{i}`, `cls_token`, `block{i}.{j}.attn.{q,kv}`,
  `norm`, `head`), which is also the flax naming, so it maps one to one.

Every checkpoint is first renamed to the original naming (HF's separate key
and value projections are fused into `kv`, K rows first, docs/references.md item 9),
then converted tensor by tensor (`torch_to_flax`): Linear (out, in) → (in,
out), conv (O, I, kh, kw) → (kh, kw, I, O) (also depthwise: (C, 1, k, k) →
(k, k, 1, C)), LayerNorm/BatchNorm weight → scale, running statistics →
`batch_stats` (docs/references.md item 12).

Position embeddings are returned at the checkpoint's grids; `load_pretrained`
resizes them to the module's (bilinear, as the original `_get_pos_embed`;
`vision.resize`).

HF PVT uses LayerNorm eps 1e-6 everywhere while the original (and our default)
uses 1e-5 in the patch-embedding and spatial-reduction norms: HF checkpoints
get `HF_OVERRIDES` through `default_overrides`, so `load_pretrained`
reproduces HF's outputs exactly.
"""
from __future__ import annotations

import re
from typing import Any, Callable, Iterable, Mapping, Optional

import numpy as np

# Module overrides that reproduce HF PvtForImageClassification exactly.
HF_OVERRIDES = {'norm_eps': 1e-6, 'embed_norm_eps': 1e-6}

_HF_RENAMES = (
    (r'^pvt\.encoder\.patch_embeddings\.(\d+)\.projection\.', r'patch_embed<\1>.proj.'),
    (r'^pvt\.encoder\.patch_embeddings\.(\d+)\.layer_norm\.', r'patch_embed<\1>.norm.'),
    (r'^pvt\.encoder\.patch_embeddings\.(\d+)\.position_embeddings$', r'pos_embed<\1>'),
    (r'^pvt\.encoder\.patch_embeddings\.(\d+)\.cls_token$', r'cls_token'),
    (r'^pvt\.encoder\.block\.(\d+)\.(\d+)\.', r'block<\1>.\2.'),
    (r'\.layer_norm_1\.', '.norm1.'),
    (r'\.layer_norm_2\.', '.norm2.'),
    (r'\.attention\.self\.query\.', '.attn.q.'),
    (r'\.attention\.self\.key\.', '.attn.k.'),
    (r'\.attention\.self\.value\.', '.attn.v.'),
    (r'\.attention\.self\.sequence_reduction\.', '.attn.sr.'),
    (r'\.attention\.self\.layer_norm\.', '.attn.norm.'),
    (r'\.attention\.output\.dense\.', '.attn.proj.'),
    (r'\.mlp\.dense1\.', '.mlp.fc1.'),
    (r'\.mlp\.dense2\.', '.mlp.fc2.'),
    (r'^pvt\.encoder\.layer_norm\.', 'norm.'),
    (r'^classifier\.', 'head.'),
)


def rename(key: str, rules: Iterable[tuple[str, str]]) -> str:
  """Applies regex `rules` in order; `<n>` in a result becomes n + 1 (0- to 1-based)."""
  for pattern, repl in rules:
    key = re.sub(pattern, repl, key)
  return re.sub(r'<(\d+)>', lambda m: str(int(m.group(1)) + 1), key)


def fuse_kv(tensors: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
  """Concatenates `X.k.{weight,bias}` and `X.v.{…}` into `X.kv.{…}` (K rows first)."""
  out = {}
  for key, value in tensors.items():
    m = re.match(r'^(.*)\.k\.(weight|bias)$', key)
    if m and f'{m.group(1)}.v.{m.group(2)}' in tensors:
      out[f'{m.group(1)}.kv.{m.group(2)}'] = np.concatenate(
          [value, tensors[f'{m.group(1)}.v.{m.group(2)}']], axis=0)
    elif re.match(r'^(.*)\.v\.(weight|bias)$', key) and re.sub(
        r'\.v\.(weight|bias)$', r'.k.\1', key) in tensors:
      continue
    else:
      out[key] = value
  return out


def torch_to_flax(tensors: Mapping[str, np.ndarray],
                  module_path: Callable[[str], Optional[str]]) -> dict[str, Any]:
  """Converts original-named torch tensors into a nested flax variable dict.

  Args:
    tensors: {dotted torch name: array}.
    module_path: maps the dotted module part of a name (without the final
      `.weight`/`.bias`/…) to the flax module path ('a/b/c'); None marks the
      tensor unused.

  Returns:
    {'params': …, 'batch_stats': …, '__unused__': [names]} (empty collections
    left out). `num_batches_tracked` counters are dropped: they are not weights.
  """
  out: dict[str, Any] = {'params': {}, 'batch_stats': {}}
  unused = []
  for key, value in tensors.items():
    value = np.asarray(value)
    module, _, leaf = key.rpartition('.')
    if leaf == 'num_batches_tracked':
      continue
    if not module:  # a bare parameter such as pos_embed1 / cls_token
      module, leaf = '', key
    path = module_path(module) if module else ''
    if path is None:
      unused.append(key)
      continue
    collection = 'params'
    if leaf == 'weight':
      if value.ndim == 4:
        value, leaf = value.transpose(2, 3, 1, 0), 'kernel'  # OIHW → HWIO
      elif value.ndim == 2:
        value, leaf = value.T, 'kernel'
      else:
        leaf = 'scale'
    elif leaf in ('running_mean', 'running_var'):
      collection, leaf = 'batch_stats', {'running_mean': 'mean', 'running_var': 'var'}[leaf]
    node = out[collection]
    for part in [p for p in path.split('/') if p]:
      node = node.setdefault(part, {})
    if leaf in node:
      raise ValueError(f'Checkpoint maps two tensors onto {path}/{leaf} (second: {key!r}).')
    node[leaf] = value
  result = {k: v for k, v in out.items() if v}
  result['__unused__'] = unused
  return result


def detect(tensors: Mapping[str, np.ndarray]) -> Optional[str]:
  """'hf', 'original' or None."""
  keys = set(tensors)
  if any(k.startswith('pvt.encoder.patch_embeddings.') for k in keys):
    return 'hf'
  if 'patch_embed1.proj.weight' in keys and 'pos_embed1' in keys:
    return 'original'
  return None


def num_classes(tensors: Mapping[str, np.ndarray], fmt: str) -> Optional[int]:
  """Classifier width; 0 for a headless (`PvtModel`) checkpoint."""
  key = 'classifier.weight' if fmt == 'hf' else 'head.weight'
  return int(tensors[key].shape[0]) if key in tensors else 0


def to_original_names(tensors: Mapping[str, np.ndarray], fmt: str) -> dict[str, np.ndarray]:
  """The checkpoint renamed to the original repository's naming."""
  if fmt == 'original':
    return dict(tensors)
  if fmt != 'hf':
    raise ValueError(f'Unknown PVT checkpoint format {fmt!r}; expected "hf" or "original".')
  return fuse_kv({rename(k, _HF_RENAMES): v for k, v in tensors.items()})


def _module_path(module: str) -> str:
  return re.sub(r'^block(\d+)\.(\d+)(\.|$)', r'block\1_\2\3', module).replace('.', '/')


def to_flax(tensors: Mapping[str, np.ndarray], fmt: str, module: Any) -> dict[str, Any]:
  """Flax variables for `module` (a `vision.pvt.PVT`) from a PVT checkpoint."""
  del module  # every shape follows from the checkpoint; the loader resizes the grids
  return torch_to_flax(to_original_names(tensors, fmt), _module_path)


def default_overrides(fmt: str, tensors: Mapping[str, np.ndarray]) -> dict:
  """HF checkpoints imply HF's LayerNorm eps; other namings use ours."""
  del tensors
  return dict(HF_OVERRIDES) if fmt == 'hf' else {}
