"""SegFormer / MiT checkpoints → flax variables of `vision.mit.MixTransformer`
(`mit_b*` classifiers) and `vision.segformer.SegFormer` (`segformer_b*`).

Recognised namings:

* 'hf': HuggingFace `SegformerForImageClassification`,
  `SegformerForSemanticSegmentation` and `SegformerModel`, both the
  transformers ≥ 5 state-dict names (`segformer.stages.{i}.blocks.{j}.
  attention.q_proj`, `decode_head.linear_projections.{i}.proj`, …) and the
  older names the published hub checkpoints use (`segformer.encoder.block.{i}.
  {j}.attention.self.query`, `decode_head.linear_c.{i}.proj`, …).
* 'original': the authors' code — mmsegmentation SegFormer checkpoints
  (`backbone.patch_embed1.proj`, `decode_head.linear_c4.proj`,
  `decode_head.linear_fuse.conv`/`.bn`, `decode_head.linear_pred`) and the
  ImageNet MiT classifiers (`patch_embed1.proj`, `block1.0.attn.kv`, `head`).
  mmseg's unused `decode_head.conv_seg` is ignored, and so is the ImageNet
  classifier `head` when a MiT classifier initialises SegFormer's encoder (the
  SegFormer paper's setup; the decoder then starts from its initialisation).

Everything is renamed to the original naming (HF's separate k/v projections
fused into `kv`, K rows first), then converted by
`vision.weights.pvt.torch_to_flax` (Linear transpose, OIHW → HWIO, depthwise
(C, 1, 3, 3) → (3, 3, 1, C), BatchNorm running statistics → `batch_stats`).
The decoder's 1×1 convolutions (`linear_fuse`, the classifier) become Dense
kernels (in, out).

HF SegFormer uses LayerNorm eps 1e-5 everywhere while the original (and our
default) uses 1e-6 in the blocks: `default_overrides` applies HF_OVERRIDES to
HF checkpoints, so `load_pretrained` reproduces HF's outputs exactly.
"""
from __future__ import annotations

import re
from typing import Any, Mapping, Optional

import numpy as np

from vision.weights import pvt as pvt_weights

# Module overrides that reproduce HF SegFormer exactly.
HF_OVERRIDES = {'norm_eps': 1e-5, 'embed_norm_eps': 1e-5}

# transformers < 5 (hub checkpoints) → transformers 5 names.
_HF_LEGACY = (
    (r'encoder\.patch_embeddings\.(\d+)\.', r'stages.\1.patch_embeddings.'),
    (r'encoder\.block\.(\d+)\.', r'stages.\1.blocks.'),
    (r'encoder\.layer_norm\.(\d+)\.', r'stages.\1.layer_norm.'),
    (r'attention\.self\.query\.', 'attention.q_proj.'),
    (r'attention\.self\.key\.', 'attention.k_proj.'),
    (r'attention\.self\.value\.', 'attention.v_proj.'),
    (r'attention\.self\.sr\.', 'attention.sequence_reduction.sequence_reduction.'),
    (r'attention\.self\.layer_norm\.', 'attention.sequence_reduction.layer_norm.'),
    (r'attention\.output\.dense\.', 'attention.o_proj.'),
    (r'mlp\.dense1\.', 'mlp.fc1.'),
    (r'mlp\.dense2\.', 'mlp.fc2.'),
    (r'\.layer_norm_1\.', '.layernorm_before.'),
    (r'\.layer_norm_2\.', '.layernorm_after.'),
    (r'^decode_head\.linear_c\.', 'decode_head.linear_projections.'),
)

# transformers 5 names → original names ('<n>' is 0-based n, written n + 1).
_HF_TO_ORIGINAL = (
    (r'^segformer\.stages\.(\d+)\.patch_embeddings\.proj\.', r'backbone.patch_embed<\1>.proj.'),
    (r'^segformer\.stages\.(\d+)\.patch_embeddings\.layer_norm\.',
     r'backbone.patch_embed<\1>.norm.'),
    (r'^segformer\.stages\.(\d+)\.blocks\.(\d+)\.', r'backbone.block<\1>.\2.'),
    (r'^segformer\.stages\.(\d+)\.layer_norm\.', r'backbone.norm<\1>.'),
    (r'\.layernorm_before\.', '.norm1.'),
    (r'\.layernorm_after\.', '.norm2.'),
    (r'\.attention\.q_proj\.', '.attn.q.'),
    (r'\.attention\.k_proj\.', '.attn.k.'),
    (r'\.attention\.v_proj\.', '.attn.v.'),
    (r'\.attention\.sequence_reduction\.sequence_reduction\.', '.attn.sr.'),
    (r'\.attention\.sequence_reduction\.layer_norm\.', '.attn.norm.'),
    (r'\.attention\.o_proj\.', '.attn.proj.'),
    (r'\.mlp\.dwconv\.dwconv\.', '.mlp.dwconv.'),
    (r'^decode_head\.linear_projections\.(\d+)\.proj\.', r'decode_head.linear_c<\1>.'),
    (r'^decode_head\.linear_fuse\.', 'decode_head.linear_fuse.'),
    (r'^decode_head\.batch_norm\.', 'decode_head.batch_norm.'),
    (r'^decode_head\.classifier\.', 'decode_head.classifier.'),
    (r'^classifier\.', 'head.'),
)

# mmsegmentation / MiT-classifier names → the canonical names used here.
_ORIGINAL_CANON = (
    (r'\.mlp\.dwconv\.dwconv\.', '.mlp.dwconv.'),
    (r'^decode_head\.linear_c(\d)\.proj\.', r'decode_head.linear_c\1.'),
    (r'^decode_head\.linear_fuse\.conv\.', 'decode_head.linear_fuse.'),
    (r'^decode_head\.linear_fuse\.bn\.', 'decode_head.batch_norm.'),
    (r'^decode_head\.linear_pred\.', 'decode_head.classifier.'),
)


def detect(tensors: Mapping[str, np.ndarray]) -> Optional[str]:
  """'hf', 'original' or None."""
  keys = set(tensors)
  if any(k.startswith(('segformer.stages.', 'segformer.encoder.patch_embeddings.'))
         for k in keys):
    return 'hf'
  for prefix in ('', 'backbone.'):
    if (f'{prefix}patch_embed1.proj.weight' in keys and
        f'{prefix}block1.0.mlp.dwconv.dwconv.weight' in keys):
      return 'original'
  return None


def decoder_classes(tensors: Mapping[str, np.ndarray], fmt: str) -> Optional[int]:
  """Segmentation classes of the checkpoint's decoder; None without a decoder
  (an ImageNet MiT classifier, whose encoder SegFormer starts from)."""
  key = 'decode_head.classifier.weight' if fmt == 'hf' else 'decode_head.linear_pred.weight'
  return int(tensors[key].shape[0]) if key in tensors else None


def num_classes(tensors: Mapping[str, np.ndarray], fmt: str) -> Optional[int]:
  """Segmentation classes if the checkpoint has a decoder, else classifier
  width; 0 for a bare encoder."""
  if fmt == 'hf':
    keys = ('decode_head.classifier.weight', 'classifier.weight')
  else:
    keys = ('decode_head.linear_pred.weight', 'head.weight')
  for key in keys:
    if key in tensors:
      return int(tensors[key].shape[0])
  return 0


def to_original_names(tensors: Mapping[str, np.ndarray], fmt: str) -> dict[str, np.ndarray]:
  """The checkpoint with encoder keys under 'backbone.' in canonical original naming."""
  if fmt == 'hf':
    renamed = {}
    for key, value in tensors.items():
      key = pvt_weights.rename(key, _HF_LEGACY)
      renamed[pvt_weights.rename(key, _HF_TO_ORIGINAL)] = value
    return pvt_weights.fuse_kv(renamed)
  if fmt != 'original':
    raise ValueError(f'Unknown SegFormer checkpoint format {fmt!r}; expected "hf" or "original".')
  out = {}
  encoder = re.compile(r'^(patch_embed\d|block\d|norm\d)\.')
  for key, value in tensors.items():
    if key.startswith('decode_head.conv_seg.'):
      continue  # mmseg's BaseDecodeHead creates it; SegFormer's head never uses it
    if encoder.match(key):
      key = 'backbone.' + key
    out[pvt_weights.rename(key, _ORIGINAL_CANON)] = value
  return out


def to_flax(tensors: Mapping[str, np.ndarray], fmt: str, module: Any) -> dict[str, Any]:
  """Flax variables for a MixTransformer or SegFormer `module`."""
  segmentation = hasattr(module, 'decoder_dim')
  if segmentation and getattr(module, 'backbone', None) is not None:
    raise ValueError('SegFormer checkpoints load into the built-in MiT encoder only; '
                     f'this module has backbone={type(module.backbone).__name__}.')
  tensors = to_original_names(tensors, fmt)
  if segmentation:  # an ImageNet MiT classifier's head has no place in SegFormer
    tensors = {k: v for k, v in tensors.items() if not k.startswith('head.')}
  squeeze = ('decode_head.linear_fuse.weight', 'decode_head.classifier.weight')
  tensors = {k: (v.reshape(v.shape[:2]) if k in squeeze and np.ndim(v) == 4 else v)
             for k, v in tensors.items()}

  def module_path(name: str) -> Optional[str]:
    if not segmentation:
      if not name.startswith('backbone.'):
        return name.replace('.', '/') if name == 'head' else None
      name = name[len('backbone.'):]
    name = re.sub(r'(^|\.)block(\d+)\.(\d+)(\.|$)', r'\1block\2_\3\4', name)
    return name.replace('.', '/')

  return pvt_weights.torch_to_flax(tensors, module_path)


def default_overrides(fmt: str, tensors: Mapping[str, np.ndarray]) -> dict:
  """HF checkpoints imply HF's LayerNorm eps; other namings use ours."""
  del tensors
  return dict(HF_OVERRIDES) if fmt == 'hf' else {}
