"""`load_pretrained`: weights from .safetensors / .npz files into flax variables.

Never unpickles: safetensors is a flat tensor format and `.npz` files are read
with `allow_pickle=False`. The naming convention (HuggingFace transformers,
timm or the original repository) is detected from the keys by the family's
converter in `vision.weights`.
"""
from __future__ import annotations

import importlib
import os
from typing import Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from vision import registry

_CONVERTERS = {
    'vit': 'vision.weights.vit',
    'vit_hybrid': 'vision.weights.vit',
    'swin': 'vision.weights.swin',
    'pvt': 'vision.weights.pvt',
    'mit': 'vision.weights.segformer',
    'segformer': 'vision.weights.segformer',
}


def read_tensors(path: str) -> dict[str, np.ndarray]:
  """Reads a flat {name: array} checkpoint from .safetensors or .npz."""
  if not os.path.exists(path):
    raise ValueError(f'Checkpoint file {path!r} does not exist.')
  if path.endswith('.safetensors'):
    from safetensors.numpy import load_file  # pylint: disable=g-import-not-at-top
    return dict(load_file(path))
  if path.endswith('.npz'):
    with np.load(path, allow_pickle=False) as data:
      return {k: data[k] for k in data.files}
  raise ValueError(
      f'Unsupported checkpoint {path!r}: expected a .safetensors or .npz file.')


def _flat_shapes(tree: Any) -> dict[str, tuple[int, ...]]:
  flat = flax.traverse_util.flatten_dict(flax.core.unfreeze(tree), sep='/')
  return {k: tuple(v.shape) for k, v in flat.items()}


def check_variables(variables: dict, expected: dict, unused: list[str]) -> None:
  """Raises a ValueError listing missing, unexpected and mis-shaped keys."""
  got, want = _flat_shapes(variables), _flat_shapes(expected)
  missing = sorted(set(want) - set(got))
  unexpected = sorted(set(got) - set(want)) + sorted(unused)
  misshaped = sorted(f'{k}: checkpoint {got[k]} vs model {want[k]}'
                     for k in set(got) & set(want) if got[k] != want[k])
  if missing or unexpected or misshaped:
    lines = ['Checkpoint does not fit the model.']
    for title, items in (('missing', missing), ('unexpected', unexpected),
                         ('mis-shaped', misshaped)):
      if items:
        lines.append(f'  {title} ({len(items)}): ' + ', '.join(items[:20]) +
                     (' …' if len(items) > 20 else ''))
    raise ValueError('\n'.join(lines))


def stack_scanned_blocks(variables: Any, expected: Any) -> Any:
  """Checkpoint blocks `name_0 … name_{L−1}` → `name` with a leading [L] axis.

  A model built with `scan_blocks=True` (ViT, PVT, MiT, SegFormer's encoder)
  holds each run of blocks as one stacked tree; checkpoints always store
  them one by one. Applied wherever `expected` (the model's variable tree)
  has a subtree `name` that `variables` lacks and `name_0` exists; other
  mismatches are left for `check_variables` to report.
  """
  if not isinstance(variables, dict) or not isinstance(expected, dict):
    return variables
  out = dict(variables)
  for key, want in expected.items():
    if key in out:
      out[key] = stack_scanned_blocks(out[key], want)
    elif isinstance(want, dict) and f'{key}_0' in out:
      depth = jax.tree.leaves(want)[0].shape[0]
      names = [f'{key}_{i}' for i in range(depth)]
      if all(n in out for n in names) and f'{key}_{depth}' not in out:
        trees = [flax.core.unfreeze(out.pop(n)) for n in names]
        if any(jax.tree.structure(t) != jax.tree.structure(trees[0]) for t in trees):
          raise ValueError(f'Checkpoint blocks {names[0]} … {names[-1]} differ in their '
                           'tensors; cannot stack them for scan_blocks=True.')
        out[key] = jax.tree.map(lambda *leaves: np.stack(leaves), *trees)
  return out


def init_shapes(module: nn.Module) -> dict:
  """The model's variable shapes, by `jax.eval_shape` (no compilation)."""
  size = getattr(module, 'img_size', 224)
  size = (size, size) if isinstance(size, int) else tuple(size)
  chans = getattr(module, 'in_chans', 3)
  x = jnp.zeros((1, *size, chans), jnp.float32)
  return jax.eval_shape(lambda: module.init(jax.random.PRNGKey(0), x, train=False))


def load_pretrained(name: str, path: str, **overrides: Any) -> tuple[nn.Module, dict]:
  """Builds model `name` and fills it with the weights in `path`.

  `num_classes` is taken from the checkpoint unless given in `overrides`; an
  `img_size` override resizes position embeddings (grid part only).

  Returns:
    (module, variables), ready for `module.apply(variables, images)`.
  """
  entry = registry.get_model_def(name)
  if entry.family not in _CONVERTERS:
    raise ValueError(f'Model {name!r} (family {entry.family!r}) has no weight import.')
  converter = importlib.import_module(_CONVERTERS[entry.family])
  tensors = read_tensors(path)
  fmt = converter.detect(tensors)
  if fmt is None:
    raise ValueError(
        f'{path!r} does not look like a {entry.family} checkpoint in HuggingFace, '
        f'timm or original naming (first keys: {sorted(tensors)[:5]}).')
  # A naming convention can imply numerics (HF PVT/SegFormer LayerNorm eps);
  # explicit overrides still win.
  default_overrides = getattr(converter, 'default_overrides', None)
  if default_overrides is not None:
    for key, value in default_overrides(fmt).items():
      overrides.setdefault(key, value)
  if 'num_classes' not in overrides:
    classes = converter.num_classes(tensors, fmt)
    if classes is not None:
      overrides['num_classes'] = classes
  module = registry.create_model(name, **overrides)
  variables = dict(converter.to_flax(tensors, fmt, module))
  unused = list(variables.pop('__unused__', []))
  expected = flax.core.unfreeze(init_shapes(module))
  variables = stack_scanned_blocks(variables, expected)
  check_variables(variables, expected, unused)
  variables = jax.tree.map(
      lambda v, e: jnp.asarray(v, dtype=e.dtype), variables, expected)
  return module, variables
