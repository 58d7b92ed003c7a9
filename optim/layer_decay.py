"""Layer-wise learning-rate decay (BEiT, Bao et al. 2021; MAE, He et al. 2021).

With L transformer blocks numbered 1..L from the input, layer id i gets the
learning-rate factor

    m(i) = decay^(L + 1 − i)

where the embeddings (patch / position embeddings, class token, a hybrid's
ResNet stem) have id 0, so m = decay^(L+1), and the head (with the final
norm, or a segmentation decoder) has id L + 1, so m = 1.

Layer ids come from parameter paths ('/'-joined keys), so `optim` needs no
model code. The naming of each family:

- ViT and hybrid ViT: `blocks_{j}` (or `blocks`, stacked by `nn.scan` along
  axis 0), `patch_embed`, `pos_embed`, `cls_token`, `stem/...`, `norm`, `head`.
- Swin: `layers_{s}_blocks_{j}` (or `layers_{s}_blocks` stacked), blocks
  counted across stages; `layers_{s}_downsample` gets the id of the last
  block of stage s (the SimMIM fine-tuning rule); `patch_embed_*` id 0.
- PVT and MiT (alone or as SegFormer's `backbone`): `block{k}_{j}` (or
  `block{k}` stacked), blocks counted across stages k = 1..4; the stage's
  `patch_embed{k}` / `pos_embed{k}` get the id of the last block before the
  stage (0 for k = 1) and MiT's per-stage `norm{k}` that of the stage's last
  block; `cls_token` is an embedding (id 0); SegFormer's `decode_head` is head.

A stacked leaf of a stage with d blocks gets the d ids of its rows, so its
factor is an array of length d along axis 0 (see `optim.policy.scale_by_multipliers`).
"""
from __future__ import annotations

import re
from typing import Any, NamedTuple, Optional

import jax
import numpy as np
import optax

from optim import policy

# Path segments that only wrap a model (SegFormer's encoder).
_WRAPPERS = ('backbone',)
_EMBEDDINGS = re.compile(r'patch_embed(_\w+)?|pos_embed|absolute_pos_embed|cls_token|'
                         r'dist_token|mask_token|stem')
_HEAD = re.compile(r'head|norm|fc_norm|pre_logits|decode_head')
# (pattern of the first model-level path segment, kind, stage from groups, block from groups)
_BLOCK_RULES = (
    (re.compile(r'blocks_(\d+)'), 'block', lambda g: 0, lambda g: int(g[0])),
    (re.compile(r'blocks'), 'stack', lambda g: 0, None),
    (re.compile(r'layers_(\d+)_blocks_(\d+)'), 'block', lambda g: int(g[0]), lambda g: int(g[1])),
    (re.compile(r'layers_(\d+)_blocks'), 'stack', lambda g: int(g[0]), None),
    (re.compile(r'block(\d+)_(\d+)'), 'block', lambda g: int(g[0]) - 1, lambda g: int(g[1])),
    (re.compile(r'block(\d+)'), 'stack', lambda g: int(g[0]) - 1, None),
    (re.compile(r'layers_(\d+)_downsample'), 'after', lambda g: int(g[0]), None),
    (re.compile(r'(?:patch_embed|pos_embed)(\d+)'), 'before', lambda g: int(g[0]) - 1, None),
    (re.compile(r'norm(\d+)'), 'after', lambda g: int(g[0]) - 1, None),
)


class Place(NamedTuple):
  """Where a parameter sits: kind ('block', 'stack', 'before', 'after', 'embed', 'head')."""
  kind: str
  stage: int = 0
  block: int = 0


def place(path: str) -> Place:
  """The `Place` of the parameter at `path` (see the module docstring for the naming).

  Raises:
    ValueError: the path follows none of the known naming rules.
  """
  segments = path.split('/')
  while segments and segments[0] in _WRAPPERS and len(segments) > 1:
    segments = segments[1:]
  first = segments[0]
  for pattern, kind, stage, block in _BLOCK_RULES:
    m = pattern.fullmatch(first)
    if m:
      g = m.groups()
      return Place(kind, stage(g), block(g) if block else 0)
  if _EMBEDDINGS.fullmatch(first):
    return Place('embed')
  if _HEAD.fullmatch(first):
    return Place('head')
  raise ValueError(f'optimizer.layer_decay: cannot tell the layer of parameter {path!r}; '
                   'known: blocks_N / layers_S_blocks_N / blockK_N (or their scanned '
                   'stacks), embeddings (patch_embed, pos_embed, cls_token, stem) and the '
                   'head (head, norm, decode_head)')


def stage_depths(params: Any) -> tuple[int, ...]:
  """Blocks per stage, from the block names (unrolled) or the stacked axis (scanned)."""
  depths: dict[int, int] = {}
  for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
    p = place(policy.path_name(path))
    if p.kind == 'block':
      depths[p.stage] = max(depths.get(p.stage, 0), p.block + 1)
    elif p.kind == 'stack':
      d = int(np.shape(leaf)[0])
      if depths.setdefault(p.stage, d) != d:
        raise ValueError(f'optimizer.layer_decay: stacked blocks of stage {p.stage} disagree '
                         f'on their depth ({depths[p.stage]} vs {d} at {policy.path_name(path)!r})')
  if not depths:
    raise ValueError('optimizer.layer_decay needs a model with transformer blocks '
                     '(ViT, hybrid ViT, Swin, PVT, MiT/SegFormer); this one has none')
  if sorted(depths) != list(range(len(depths))):
    raise ValueError(f'optimizer.layer_decay: blocks found in stages {sorted(depths)}; '
                     'expected stages 0..S-1')
  return tuple(depths[s] for s in range(len(depths)))


def layer_ids(params: Any) -> Any:
  """Per leaf, its layer id in 0..L+1: an int, or an int array along a stacked leaf's axis 0."""
  depths = stage_depths(params)
  offsets = np.concatenate([[0], np.cumsum(depths)]).astype(int)
  total = int(offsets[-1])

  def layer(path, leaf):
    del leaf
    p = place(policy.path_name(path))
    if p.stage >= len(depths):
      raise ValueError(f'optimizer.layer_decay: {policy.path_name(path)!r} belongs to stage '
                       f'{p.stage}, but the blocks have {len(depths)} stage(s)')
    if p.kind == 'block':
      return int(offsets[p.stage] + p.block + 1)
    if p.kind == 'stack':
      return offsets[p.stage] + np.arange(1, depths[p.stage] + 1)
    if p.kind == 'before':
      return int(offsets[p.stage])
    if p.kind == 'after':
      return int(offsets[p.stage + 1])
    return 0 if p.kind == 'embed' else total + 1

  return jax.tree_util.tree_map_with_path(layer, params)


def num_layers(params: Any) -> int:
  """L, the number of transformer blocks across all stages."""
  return sum(stage_depths(params))


def layer_decay_multipliers(params: Any, decay: float) -> Any:
  """decay^(L + 1 − id) per leaf (floats, or float64 arrays for stacked leaves)."""
  check_decay(decay)
  total = num_layers(params)

  def factor(i):
    if isinstance(i, np.ndarray):
      return np.asarray(decay, np.float64) ** (total + 1 - i)
    return float(decay) ** (total + 1 - i)

  return jax.tree.map(factor, layer_ids(params))


def check_decay(decay: Optional[float]) -> None:
  if isinstance(decay, bool) or not isinstance(decay, (int, float)) or not 0 < decay <= 1:
    raise ValueError(f'optimizer.layer_decay={decay!r}; must be a number in (0, 1] or None')


def scale_by_layer_decay(decay: float) -> optax.GradientTransformation:
  """Multiplies each leaf's update by decay^(L + 1 − layer id); stateless."""
  check_decay(decay)
  return policy.scale_by_multipliers(lambda tree: layer_decay_multipliers(tree, decay))
