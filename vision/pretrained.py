"""`load_pretrained`: weights from .safetensors / .npz files into flax variables.

Never unpickles: safetensors is a flat tensor format and `.npz` files are read
with `allow_pickle=False`. The naming convention (HuggingFace transformers,
timm, the original repository or Google's `.npz`) is detected from the keys
by the family's converter in `vision.weights`; `fit_variables` then fits the
converted variables to the model (scan stacking, geometry, classifier
re-initialisation, fresh entries) or names exactly what does not fit.
"""
from __future__ import annotations

import dataclasses
import importlib
import os
import re
from typing import Any, Optional, Sequence

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from vision import registry
from vision import resize

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


def flatten(tree: Any) -> dict[str, Any]:
  """{'collection/a/b/leaf': array} of a nested variable dict."""
  return flax.traverse_util.flatten_dict(flax.core.unfreeze(tree), sep='/')


def _unflatten(flat: dict[str, Any]) -> dict:
  return flax.traverse_util.unflatten_dict(flat, sep='/')


def misfit_message(missing: list[str], unexpected: list[str], misshaped: list[str]) -> str:
  """One line naming what does not fit (at most 20 paths of each kind)."""
  parts = []
  for title, items in (('missing', missing), ('unexpected', unexpected),
                       ('mis-shaped', misshaped)):
    if items:
      parts.append(f'{title} ({len(items)}): ' + ', '.join(items[:20]) +
                   (' …' if len(items) > 20 else ''))
  return 'Checkpoint does not fit the model: ' + '; '.join(parts)


def stack_scanned_blocks(variables: Any, expected: Any) -> Any:
  """Checkpoint blocks `name_0 … name_{L−1}` ↔ `name` with a leading [L] axis.

  A model built with `scan_blocks=True` (ViT, Swin, PVT, MiT, SegFormer's
  encoder) holds each run of blocks as one stacked tree; torch checkpoints
  always store them one by one, and a visopt checkpoint stores them as the
  run that wrote it did. Stacks wherever `expected` (the model's variable
  tree) has a subtree `name` that `variables` lacks and `name_0` exists;
  splits wherever `expected` has `name_0` and `variables` has `name`. Other
  mismatches are left for the fit check to report.
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
  stacked = {m.group(1) for k in expected if (m := re.fullmatch(r'(.+)_0', k))}
  for key in stacked:
    if key in out and key not in expected and isinstance(out[key], dict):
      tree = out.pop(key)
      depth = jax.tree.leaves(tree)[0].shape[0]
      for i in range(depth):
        out[f'{key}_{i}'] = jax.tree.map(lambda x, i=i: np.asarray(x)[i], tree)
  return out


def init_shapes(module: nn.Module) -> dict:
  """The model's variable shapes, by `jax.eval_shape` (no compilation)."""
  return jax.eval_shape(lambda: _init(module, jax.random.PRNGKey(0)))


def init_variables(module: nn.Module, seed: int = 0) -> dict:
  """The model's initial variables (the same draw as `init_shapes` describes)."""
  return jax.device_get(jax.jit(lambda key: _init(module, key))(jax.random.PRNGKey(seed)))


def _init(module: nn.Module, key: jax.Array) -> dict:
  size = getattr(module, 'img_size', 224)
  size = (size, size) if isinstance(size, int) else tuple(size)
  x = jnp.zeros((1, *size, getattr(module, 'in_chans', 3)), jnp.float32)
  return module.init({'params': key, 'dropout': key}, x, train=False)


def family_of(module: nn.Module) -> str:
  """The registry family of a module built by `vision.create_model` ('vit', 'swin', …)."""
  for name in registry.list_models():
    entry = registry.get_model_def(name)
    if entry.cls is type(module):
      if entry.family.startswith('vit'):
        return 'vit_hybrid' if getattr(module, 'hybrid_depths', None) else 'vit'
      return entry.family
  raise ValueError(f'{type(module).__name__} is not a registered vision model.')


def converter_for(family: str) -> Any:
  """The `vision.weights` module that converts checkpoints of `family`."""
  if family not in _CONVERTERS:
    raise ValueError(f'Family {family!r} has no weight import; valid: {", ".join(_CONVERTERS)}.')
  return importlib.import_module(_CONVERTERS[family])


def convert_tensors(tensors: dict[str, np.ndarray], family: str, module: nn.Module,
                    path: str = 'checkpoint') -> tuple[dict, list[str]]:
  """A flat torch/Google checkpoint → (flax variables at its geometry, unused keys)."""
  converter = converter_for(family)
  fmt = converter.detect(tensors)
  if fmt is None:
    raise ValueError(
        f'{path!r} does not look like a {family} checkpoint in HuggingFace, timm, original '
        f'or Google naming (first keys: {sorted(tensors)[:5]}).')
  variables = dict(converter.to_flax(tensors, fmt, module))
  return variables, list(variables.pop('__unused__', []))


@dataclasses.dataclass
class Fitted:
  """Variables for a model, and where each entry came from (flat 'collection/…' paths).

  Attributes:
    variables: the model's variables.
    loaded: entries taken from the checkpoint (resized ones included).
    resized: entries resized to the model's geometry (`vision.resize`).
    zeroed: classifier entries re-initialised to zero.
    fresh: entries that keep the model's initialisation (`dont_load`, a
      decoder the checkpoint lacks).
    discarded: checkpoint entries the model deliberately does not use.
  """
  variables: dict
  loaded: list[str]
  resized: list[str]
  zeroed: list[str]
  fresh: list[str]
  discarded: list[str]


HEAD_MODES = ('auto', 'reinit', 'keep')

# The classifier of each family (under 'params'), zeroed by head='reinit'/'auto'.
HEADS = {'baseline': 'head', 'vit': 'head', 'vit_hybrid': 'head', 'swin': 'head',
         'pvt': 'head', 'mit': 'head', 'segformer': 'decode_head/classifier'}


def fit_variables(checkpoint: dict, module: nn.Module, family: str, *,
                  fresh: Optional[dict] = None, head: str = 'auto',
                  dont_load: Sequence[str] = (), unused: Sequence[str] = ()) -> Fitted:
  """Fits checkpoint variables (our naming) to `module`: the transfer-learning rules.

  1. Blocks are stacked/split for `scan_blocks`; position embeddings and
     relative-position-bias tables resized to the module (`vision.resize`).
  2. Entries whose path (within its collection, e.g. `head/kernel`) fully
     matches a `dont_load` regex keep their `fresh` value.
  3. The classifier (`HEADS[family]`): head='keep' loads it; 'reinit' sets
     kernel and bias to zero (big_vision's fine-tuning head); 'auto' zeroes it
     when the checkpoint's does not fit (another class count, or a
     `pre_logits` layer the model lacks, which is then discarded) and keeps it
     otherwise; a model without a classifier (num_classes=0) discards the
     checkpoint's unless head='keep'.
  4. SegFormer from an ImageNet MiT classifier: the encoder is loaded, the
     whole decoder keeps its `fresh` initialisation (the SegFormer paper's
     setup; its classifier is zeroed only with head='reinit').
  Anything else that does not fit raises a one-line ValueError naming the
  missing, unexpected (including `unused` checkpoint keys) and mis-shaped paths.

  Args:
    checkpoint: {'params': …, 'batch_stats': …} in our naming, checkpoint geometry.
    module: the model to fill.
    family: its weight family (`family_of(module)`).
    fresh: the model's initial variables, which also fix the expected shapes
      (a trainer's model sees its data's image size); when None, shapes come
      from `init_shapes` and fresh values from `init_variables` if needed.
  """
  if head not in HEAD_MODES:
    raise ValueError(f'head={head!r} is unknown; valid: {", ".join(HEAD_MODES)}.')
  patterns = []
  for p in dont_load:
    try:
      patterns.append(re.compile(p))
    except re.error as e:
      raise ValueError(f'dont_load pattern {p!r} is not a regular expression: {e}.') from e
  expected = flax.core.unfreeze(init_shapes(module) if fresh is None else fresh)
  checkpoint = {k: v for k, v in flax.core.unfreeze(checkpoint).items() if v}
  if family == 'segformer':
    checkpoint = _mit_into_segformer(checkpoint)
  checkpoint = stack_scanned_blocks(checkpoint, expected)
  resized: list[str] = []
  if 'params' in checkpoint:
    checkpoint['params'], resized = resize.adapt(checkpoint['params'], module, family)
  got, want = flatten(checkpoint), flatten(expected)

  discarded = []
  head_prefix = 'params/' + HEADS.get(family, 'head') + '/'
  head_paths = [k for k in want if k.startswith(head_prefix)]
  extra = 'params/pre_logits/'
  drop_extra = not any(k.startswith(extra) for k in want) and any(k.startswith(extra) for k in got)
  new_decoder = family == 'segformer' and not any(k.startswith('params/decode_head/')
                                                  for k in got)
  head_misfit = drop_extra or any(k not in got or got[k].shape != want[k].shape
                                  for k in head_paths)
  zero = head == 'reinit' or (head == 'auto' and head_misfit and not new_decoder)
  if drop_extra and head != 'keep':
    discarded += [k for k in got if k.startswith(extra)]
  if zero or (not head_paths and head != 'keep'):  # a headless model drops the checkpoint's
    discarded += [k for k in got if k.startswith(head_prefix) and k not in want]
  fresh_paths = {k for k in want if _matches(patterns, k)}
  if new_decoder:
    fresh_paths |= {k for k in want if k.split('/')[1] == 'decode_head'}
  zeroed = sorted(head_paths) if zero else []
  fresh_paths -= set(zeroed)
  from_file = [k for k in want if k not in fresh_paths and k not in zeroed]
  skip = set(discarded) | {k for k in got if _matches(patterns, k) or k in zeroed}
  missing = sorted(k for k in from_file if k not in got)
  unexpected = sorted(k for k in got if k not in want and k not in skip) + sorted(unused)
  misshaped = sorted(f'{k}: checkpoint {tuple(got[k].shape)} vs model {tuple(want[k].shape)}'
                     for k in from_file if k in got and got[k].shape != want[k].shape)
  if missing or unexpected or misshaped:
    raise ValueError(misfit_message(missing, unexpected, misshaped))

  if fresh_paths and fresh is None:
    fresh = init_variables(module)
  fresh_flat = flatten(fresh) if fresh_paths else {}
  out = {}
  for k, spec in want.items():
    if k in zeroed:
      value = np.zeros(spec.shape, spec.dtype)
    elif k in fresh_paths:
      value = fresh_flat[k]
    else:
      value = got[k]
    out[k] = jnp.asarray(value, dtype=spec.dtype)
  return Fitted(_unflatten(out), sorted(from_file), sorted('params/' + p for p in resized),
                zeroed, sorted(fresh_paths), sorted(discarded))


def _matches(patterns: list[re.Pattern], path: str) -> bool:
  inner = path.split('/', 1)[1]  # within the collection: 'head/kernel'
  return any(p.fullmatch(inner) for p in patterns)


def _mit_into_segformer(checkpoint: dict) -> dict:
  """A MiT classifier in our naming (encoder at the top, `head`) → SegFormer's `backbone`."""
  params = checkpoint.get('params', {})
  if 'backbone' in params or 'patch_embed1' not in params:
    return checkpoint
  out = dict(checkpoint)
  out['params'] = {'backbone': {k: v for k, v in params.items() if k != 'head'}}
  for collection, tree in checkpoint.items():
    if collection != 'params':
      out[collection] = {'backbone': tree}
  return out


def fit_checkpoint(name: str, path: str, *, head: str = 'auto', dont_load: Sequence[str] = (),
                   **overrides: Any) -> tuple[nn.Module, Fitted]:
  """`load_pretrained` with the provenance of every entry (`Fitted`)."""
  entry = registry.get_model_def(name)
  converter = converter_for(entry.family)
  tensors = read_tensors(path)
  fmt = converter.detect(tensors)
  if fmt is not None:
    # A checkpoint can imply numerics (HF's LayerNorm ε) or a layer (Google's
    # pre_logits); explicit overrides still win.
    default_overrides = getattr(converter, 'default_overrides', None)
    if default_overrides is not None:
      for key, value in default_overrides(fmt, tensors).items():
        overrides.setdefault(key, value)
    if 'num_classes' not in overrides:
      classes = (converter.decoder_classes(tensors, fmt) if entry.task == 'segmentation'
                 else converter.num_classes(tensors, fmt))
      if classes is not None:
        overrides['num_classes'] = classes
  module = registry.create_model(name, **overrides)
  family = family_of(module) if entry.family.startswith('vit') else entry.family
  variables, unused = convert_tensors(tensors, family, module, path)
  return module, fit_variables(variables, module, family, head=head, dont_load=dont_load,
                               unused=unused)


def load_pretrained(name: str, path: str, *, head: str = 'auto', dont_load: Sequence[str] = (),
                    **overrides: Any) -> tuple[nn.Module, dict]:
  """Builds model `name` and fills it with the weights in `path`.

  `num_classes` is taken from the checkpoint unless given in `overrides`; a
  different count re-initialises the classifier to zero (`head`, see
  `fit_variables`). An `img_size` or `window_size` override resizes position
  embeddings and Swin's relative-position-bias tables (`vision.resize`).
  `segformer_*` from an ImageNet MiT classifier gets the encoder from the file
  and a freshly initialised decoder. `dont_load`: regexes of parameter paths
  that keep their initialisation.

  Returns:
    (module, variables), ready for `module.apply(variables, images)`.
  """
  module, fitted = fit_checkpoint(name, path, head=head, dont_load=dont_load, **overrides)
  return module, fitted.variables
