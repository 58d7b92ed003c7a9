"""scikit-learn's bundled handwritten digits (Alpaydin & Kaynak, UCI): no download.

1,797 grey 8x8 images of the digits 0-9 with pixel values 0..16. The split
is deterministic and stratified by class: scikit-learn's `train_test_split`
with `test_size=0.2, random_state=0` gives 1437 'train' and 360 'test'
examples. Images are kept at 8x8 and resized per batch by the pipeline.
"""
from __future__ import annotations

import numpy as np
from sklearn import datasets as sk_datasets
from sklearn import model_selection

from experiments.data.source import ArraySplit

NUM_CLASSES = 10
SPLITS = ('train', 'test')
NATIVE_SIZE = 8


def load(split: str) -> ArraySplit:
  """Returns the 'train' or 'test' split as float32 [N, 8, 8, 1] pixels in 0..16."""
  if split not in SPLITS:
    raise ValueError(f'digits split {split!r} is unknown; valid: {", ".join(SPLITS)}')
  bunch = sk_datasets.load_digits()
  images = bunch.images.astype(np.float32)[..., None]
  labels = bunch.target.astype(np.int32)
  idx = np.arange(len(labels))
  train_idx, test_idx = model_selection.train_test_split(
      idx, test_size=0.2, random_state=0, stratify=labels)
  # Keep the canonical order within a split independent of the split's draw order.
  chosen = np.sort(train_idx if split == 'train' else test_idx)
  return ArraySplit(images=images[chosen], labels=labels[chosen], scale=16.0)


def num_examples(split: str) -> int:
  """Examples in a split without loading the images."""
  if split not in SPLITS:
    raise ValueError(f'digits split {split!r} is unknown; valid: {", ".join(SPLITS)}')
  return {'train': 1437, 'test': 360}[split]
