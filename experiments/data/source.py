"""What every data source hands to the pipeline.

`DatasetInfo` is the cheap summary the trainer sizes models and schedules
with. In-memory sources (digits, image folders) return an `ArraySplit` per
split: images at their stored size plus labels, in a fixed order.
"""
from __future__ import annotations

import dataclasses
from typing import NamedTuple

import numpy as np


class DatasetInfo(NamedTuple):
  """Shape and size of a dataset as the model sees it (after resizing).

  Attributes:
    num_classes: number of label values; labels are in [0, num_classes).
    image_shape: (H, W, C) of one example as yielded by the iterators.
    num_train: examples in `train_split` (all processes together).
    num_eval: examples in `eval_split` (all processes together).
  """
  num_classes: int
  image_shape: tuple[int, int, int]
  num_train: int
  num_eval: int


@dataclasses.dataclass(frozen=True)
class ArraySplit:
  """One split held in memory, in a fixed canonical order.

  Attributes:
    images: `[N, h, w, c]` uint8 or float32 at the stored resolution.
    labels: `[N]` int32 class ids.
    scale: pixels are divided by this to land in [0, 1] (255 for uint8).
  """
  images: np.ndarray
  labels: np.ndarray
  scale: float

  def __post_init__(self):
    if self.images.ndim != 4 or len(self.images) != len(self.labels):
      raise ValueError(f'images {self.images.shape} and labels {self.labels.shape} must be '
                       '[N, h, w, c] and [N]')

  def __len__(self) -> int:
    return len(self.labels)
