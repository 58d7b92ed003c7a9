"""Checkpoint geometry: resizing the weights whose shape follows the image or window size.

Three kinds of weight depend on geometry rather than on the architecture's width:

* ViT / hybrid absolute position embeddings E_pos ∈ R^{(1+h·w)×D}: the grid
  part is resized bicubically to the new token grid (H, W), the class-token
  entry is kept — HuggingFace `ViTEmbeddings.interpolate_pos_encoding` (torch
  `interpolate(size=(H, W), mode='bicubic', align_corners=False)`), timm's
  `resample_abs_pos_embed`; Swin's optional absolute embedding the same way
  (no class token), as the Swin authors' loader does.
* PVT per-stage position embeddings: resized bilinearly (torch
  `interpolate(size=(H_i, W_i), mode='bilinear', align_corners=False)`), the
  stage-4 class-token entry kept — the original PVT `_get_pos_embed`.
* Swin relative-position-bias tables T ∈ R^{(2M−1)²×heads}: each head's
  (2M−1)×(2M−1) table is resized bicubically to (2M'−1)×(2M'−1) for a new
  window M' (the Swin authors' `load_pretrained`); the index and the shift
  masks are rebuilt by the model from its own window and resolution.

Resizing is separable: out = R_h · X · R_wᵀ with 1-D matrices built here in
float64. Bicubic uses Keys' kernel with a = −0.75 on the four neighbours
⌊s⌋−1 … ⌊s⌋+2 of the source coordinate s = (o + ½)·n_in/n_out − ½, indices
clamped to the border; bilinear uses s clamped at 0 and the two neighbours
⌊s⌋, min(⌊s⌋ + 1, n_in − 1). Both are exactly torch's align_corners=False
definitions when the output size (not a scale factor) is given, including
its float32 arithmetic for s (the weights are then applied in float64).
"""
from __future__ import annotations

import math
import re
from typing import Any, Optional, Sequence

import numpy as np

METHODS = ('bicubic', 'bilinear')


def _source_coordinates(n_in: int, n_out: int) -> np.ndarray:
  """s_o = (o + ½)·n_in/n_out − ½ in float32 arithmetic, as torch computes it for
  float32 tensors (its rounding of the scale moves s by up to ~1e-7·n_out)."""
  scale = np.float32(n_in) / np.float32(n_out)
  return (scale * (np.arange(n_out, dtype=np.float32) + np.float32(0.5))
          - np.float32(0.5)).astype(np.float32)


def bicubic_matrix(n_in: int, n_out: int, a: float = -0.75) -> np.ndarray:
  """[n_out, n_in] matrix of torch's 1-D bicubic resize (align_corners=False)."""
  def kernel(d: float) -> float:
    d = abs(d)
    if d <= 1:
      return (a + 2) * d ** 3 - (a + 3) * d ** 2 + 1
    if d < 2:
      return a * d ** 3 - 5 * a * d ** 2 + 8 * a * d - 4 * a
    return 0.0

  m = np.zeros((n_out, n_in), np.float64)
  for o, s in enumerate(_source_coordinates(n_in, n_out)):
    i0 = math.floor(s)
    t = float(s - np.float32(i0))
    for k in range(-1, 3):
      m[o, min(max(i0 + k, 0), n_in - 1)] += kernel(k - t)
  return m


def bilinear_matrix(n_in: int, n_out: int) -> np.ndarray:
  """[n_out, n_in] matrix of torch's 1-D linear resize (align_corners=False)."""
  m = np.zeros((n_out, n_in), np.float64)
  for o, s in enumerate(_source_coordinates(n_in, n_out)):
    s = max(s, np.float32(0))
    i0 = min(int(math.floor(s)), n_in - 1)
    i1 = min(i0 + 1, n_in - 1)
    t = float(s - np.float32(i0))
    m[o, i0] += 1.0 - t
    m[o, i1] += t
  return m


def resize_grid(x: np.ndarray, size: Sequence[int], method: str = 'bicubic') -> np.ndarray:
  """[h, w, ...] → [H, W, ...] by separable `method` interpolation (dtype kept)."""
  if method not in METHODS:
    raise ValueError(f'method={method!r} is unknown; valid: {", ".join(METHODS)}.')
  h, w = x.shape[:2]
  new_h, new_w = (int(s) for s in size)
  if (h, w) == (new_h, new_w):
    return x
  matrix = bicubic_matrix if method == 'bicubic' else bilinear_matrix
  flat = np.asarray(x, np.float64).reshape(h, w, -1)
  out = np.einsum('oh,hwc,pw->opc', matrix(h, new_h), flat, matrix(w, new_w))
  return out.reshape(new_h, new_w, *x.shape[2:]).astype(x.dtype)


def _square_side(n: int, what: str) -> int:
  side = int(round(math.sqrt(n)))
  if side * side != n:
    raise ValueError(f'{what} has {n} grid entries, not a square grid; cannot infer its '
                     'height and width.')
  return side


def resize_pos_embed(pos: np.ndarray, grid: Sequence[int], num_prefix: int = 1,
                     method: str = 'bicubic',
                     old_grid: Optional[Sequence[int]] = None) -> np.ndarray:
  """[1, prefix + h·w, D] → [1, prefix + H·W, D]: the grid resized, the prefix kept.

  The checkpoint's grid (h, w) is `old_grid`, or square when not given (as
  every released checkpoint's is). A grid that already has the new size is
  returned unchanged.
  """
  prefix, old = pos[:, :num_prefix], pos[0, num_prefix:]
  if old_grid is None:
    side = _square_side(old.shape[0], 'Position embedding')
    old_grid = (side, side)
  h, w = (int(s) for s in old_grid)
  if h * w != old.shape[0]:
    raise ValueError(f'Position embedding with {old.shape[0]} grid entries is not {h}×{w}.')
  if (h, w) == tuple(int(g) for g in grid):
    return pos
  new = resize_grid(old.reshape(h, w, -1), grid, method)
  return np.concatenate([prefix, new.reshape(1, -1, pos.shape[-1]).astype(pos.dtype)], axis=1)


def resize_relative_position_bias_table(table: np.ndarray, window: int) -> np.ndarray:
  """[..., (2m−1)², heads] → [..., (2M−1)², heads] for window M, bicubic per head.

  Leading axes (the [L] of scanned blocks) are resized independently.
  """
  rows, heads = table.shape[-2:]
  side = _square_side(rows, 'Relative-position-bias table')
  new_side = 2 * window - 1
  if side == new_side:
    return table
  lead = table.shape[:-2]
  # [(2m−1), (2m−1), lead…, heads]: the two offset axes first, everything else along.
  x = np.moveaxis(table.reshape(*lead, side, side, heads), (-3, -2), (0, 1))
  y = resize_grid(x, (new_side, new_side), 'bicubic')
  return np.moveaxis(y, (0, 1), (-3, -2)).reshape(*lead, new_side * new_side, heads)


def _map_leaves(tree: Any, fn, path: str = '') -> Any:
  if isinstance(tree, dict):
    return {k: _map_leaves(v, fn, f'{path}/{k}' if path else k) for k, v in tree.items()}
  return fn(path, tree)


def adapt(params: dict, module: Any, family: str) -> tuple[dict, list[str]]:
  """Resizes the geometry-dependent entries of `params` to `module`'s sizes.

  Args:
    params: the 'params' collection in our flax naming (checkpoint blocks
      already stacked for `scan_blocks`).
    module: the model the parameters are for (its img_size / window_size).
    family: the registry family ('vit', 'vit_hybrid', 'swin', 'pvt', 'mit',
      'segformer'); families without geometric weights are returned as given.

  Returns:
    (params, paths that were resized).
  """
  resized: list[str] = []

  def note(path: str, old: np.ndarray, new: np.ndarray) -> np.ndarray:
    if new.shape != old.shape:
      resized.append(path)
    return new

  if family in ('vit', 'vit_hybrid'):
    def fn(path, x):
      if path == 'pos_embed':
        return note(path, x, resize_pos_embed(np.asarray(x), module.grid_size()))
      return x
  elif family == 'swin':
    grid = _swin_grid(module)

    def fn(path, x):
      if path.endswith('relative_position_bias_table'):
        return note(path, x, resize_relative_position_bias_table(np.asarray(x),
                                                                 module.window_size))
      if path == 'absolute_pos_embed':
        return note(path, x, resize_pos_embed(np.asarray(x), grid, num_prefix=0))
      return x
  elif family == 'pvt':
    grids = module.grid_sizes()

    def fn(path, x):
      m = re.fullmatch(r'pos_embed(\d+)', path)
      if not m:
        return x
      i = int(m.group(1)) - 1
      prefix = 1 if i == len(grids) - 1 else 0  # the class token rides on the last stage
      return note(path, x, resize_pos_embed(np.asarray(x), grids[i], prefix, 'bilinear'))
  else:
    return params, resized
  return _map_leaves(params, fn), resized


def _swin_grid(module: Any) -> tuple[int, int]:
  h, w = (module.img_size, module.img_size) if isinstance(module.img_size, int) else tuple(
      module.img_size)
  return h // module.patch_size, w // module.patch_size
