"""The model registry: every variant by its timm-style name.

`create_model(name, **overrides)` builds the flax module; overrides are checked
against the module's fields so a typo fails with a list of what is valid.
"""
from __future__ import annotations

import dataclasses
import difflib
from typing import Any

import flax.linen as nn

from vision import baselines
from vision import mit
from vision import pvt
from vision import segformer
from vision import swin
from vision import vit
from vision.spec import ModelDef

_MODELS: dict[str, ModelDef] = {
    **baselines.MODELS,
    **vit.MODELS,
    **swin.MODELS,
    **pvt.MODELS,
    **mit.MODELS,
    **segformer.MODELS,
    # The family without a variant: class defaults (the ViT-B/16 sizes), for configs that
    # give every size as overrides (experiments/configs/default.py).
    'vit': ModelDef('vit', vit.VisionTransformer, {}),
}


def list_models() -> list[str]:
  """All registered model names, sorted."""
  return sorted(_MODELS)


def get_model_def(name: str) -> ModelDef:
  """The registry entry for `name`; a ValueError with close matches if unknown."""
  if name not in _MODELS:
    close = difflib.get_close_matches(name, _MODELS, n=5, cutoff=0.4)
    hint = f' Did you mean: {", ".join(close)}?' if close else ''
    raise ValueError(
        f'Unknown model name {name!r}.{hint} Valid names: {", ".join(list_models())}.')
  return _MODELS[name]


def _module_fields(cls: type[nn.Module]) -> set[str]:
  return {f.name for f in dataclasses.fields(cls)
          if f.init and f.name not in ('parent', 'name')}


def create_model(name: str, **overrides: Any) -> nn.Module:
  """Builds the registered model `name` with `overrides` applied.

  A `backbone=<registered name>` override (segmentation models) is resolved to
  that model's module, so any hierarchical backbone can feed the decoder.
  """
  entry = get_model_def(name)
  valid = _module_fields(entry.cls)
  unknown = sorted(set(overrides) - valid)
  if unknown:
    raise ValueError(
        f'Unknown override(s) {unknown} for model {name!r}. '
        f'Valid overrides: {", ".join(sorted(valid))}.')
  kwargs = {**entry.kwargs, **overrides}
  backbone = kwargs.get('backbone')
  if isinstance(backbone, str):
    backbone_def = get_model_def(backbone)
    if backbone_def.family not in ('swin', 'pvt', 'mit'):
      raise ValueError(
          f'backbone={backbone!r} has no feature pyramid; use a swin_*, pvt_* '
          'or mit_* model.')
    shared_fields = ('img_size', 'in_chans', 'drop_path_rate', 'dtype', 'scan_blocks', 'remat')
    shared = {k: kwargs[k] for k in shared_fields
              if k in kwargs and k in _module_fields(backbone_def.cls)}
    kwargs['backbone'] = backbone_def.cls(**{**backbone_def.kwargs, **shared})
  module = entry.cls(**kwargs)
  validate = getattr(module, 'validate', None)
  if validate is not None:
    validate()  # impossible configurations fail here, before any tracing
  return module
