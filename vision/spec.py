"""What the registry needs to know about a model: its family, class and defaults.

This module sits at the bottom of `vision`: model files import it to describe
their variants, and `vision.registry` collects those descriptions.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import flax.linen as nn

# Overrides every registered model accepts (see docs/architecture.md).
COMMON_OVERRIDES = ('num_classes', 'img_size', 'in_chans', 'drop_rate',
                    'drop_path_rate', 'dtype')


@dataclasses.dataclass(frozen=True)
class ModelDef:
  """A registered variant.

  Attributes:
    family: weight-import family: 'baseline', 'vit', 'vit_hybrid', 'swin',
      'pvt', 'mit' or 'segformer'.
    cls: the `flax.linen.Module` class that implements it.
    kwargs: the variant's hyperparameters; `create_model` overrides apply on top.
    task: 'classification' (logits [B, classes]) or 'segmentation'
      (logits [B, H/4, W/4, classes]).
  """
  family: str
  cls: type[nn.Module]
  kwargs: Mapping[str, Any]
  task: str = 'classification'
