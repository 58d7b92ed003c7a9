"""scikit-learn's bundled handwritten digits (Alpaydin & Kaynak, UCI): no download.

1,797 grey 8x8 images of the digits 0-9 with pixel values 0..16. The split
is deterministic and stratified by class: scikit-learn's `train_test_split`
with `test_size=0.2, random_state=0` gives 1437 'train' and 360 'test'
examples. Images are kept at 8x8 and resized per batch by the pipeline.
'train[:P%]' is the first ⌊P·1437/100⌋ training examples in that canonical
order (the digits cycle through the classes, so a prefix is near-balanced),
for small-data experiments.
"""
from __future__ import annotations

import re

import numpy as np
from sklearn import datasets as sk_datasets
from sklearn import model_selection

from experiments.data.source import ArraySplit

NUM_CLASSES = 10
SPLITS = ('train', 'test')
NATIVE_SIZE = 8


def _parse(split: str) -> tuple[str, int]:
  """(base split, examples) for 'train', 'test' or 'train[:P%]' (0 < P <= 100)."""
  match = re.fullmatch(r'train\[:(\d+(?:\.\d+)?)%\]', split)
  if match and 0 < float(match.group(1)) <= 100:
    n = int(float(match.group(1)) * 1437 / 100)
    if n >= 1:
      return 'train', n
  if split not in SPLITS:
    raise ValueError(f'digits split {split!r} is unknown; valid: {", ".join(SPLITS)}, '
                     "'train[:P%]' (0 < P <= 100)")
  return split, {'train': 1437, 'test': 360}[split]


def load(split: str) -> ArraySplit:
  """Returns the 'train' or 'test' split (or a 'train[:P%]' prefix) as float32 [N, 8, 8, 1]
  pixels in 0..16."""
  split, n = _parse(split)
  bunch = sk_datasets.load_digits()
  images = bunch.images.astype(np.float32)[..., None]
  labels = bunch.target.astype(np.int32)
  idx = np.arange(len(labels))
  train_idx, test_idx = model_selection.train_test_split(
      idx, test_size=0.2, random_state=0, stratify=labels)
  # Keep the canonical order within a split independent of the split's draw order.
  chosen = np.sort(train_idx if split == 'train' else test_idx)[:n]
  return ArraySplit(images=images[chosen], labels=labels[chosen], scale=16.0)


def num_examples(split: str) -> int:
  """Examples in a split without loading the images."""
  return _parse(split)[1]
