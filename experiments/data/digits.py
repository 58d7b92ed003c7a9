"""scikit-learn's bundled handwritten digits (Alpaydin & Kaynak, UCI): no download.

1,797 grey 8x8 images of the digits 0-9 with pixel values 0..16. The split
is deterministic and stratified by class: scikit-learn's `train_test_split`
with `test_size=0.2, random_state=0` gives 1437 'train' and 360 'test'
examples. Images are kept at 8x8 and resized per batch by the pipeline.
'train[:P%]' is the first ⌊P·1437/100⌋ training examples in that canonical
order (the digits cycle through the classes, so a prefix is near-balanced),
for small-data experiments.

Subsets for transfer-learning experiments (`data.classes`,
`data.train_per_class`): `classes` keeps the digits listed, relabelled by
their position in the list (classes=(5, 6, 7, 8, 9): digit 5 -> label 0);
`per_class` keeps the first n examples of each kept class in the split's
canonical order (a few-label training set).
"""
from __future__ import annotations

import re
from typing import Optional, Sequence

import numpy as np
from sklearn import datasets as sk_datasets
from sklearn import model_selection

from experiments import checks
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


def load(split: str, classes: Optional[Sequence[int]] = None,
         per_class: Optional[int] = None) -> ArraySplit:
  """The 'train' or 'test' split (or a 'train[:P%]' prefix) as float32 [N, 8, 8, 1] pixels
  in 0..16 (subsets: see above)."""
  split, n = _parse(split)
  bunch = sk_datasets.load_digits()
  images = bunch.images.astype(np.float32)[..., None]
  labels = bunch.target.astype(np.int32)
  idx = np.arange(len(labels))
  train_idx, test_idx = model_selection.train_test_split(
      idx, test_size=0.2, random_state=0, stratify=labels)
  # Keep the canonical order within a split independent of the split's draw order.
  chosen = np.sort(train_idx if split == 'train' else test_idx)[:n]
  chosen, new_labels = subset(labels[chosen], chosen, classes, per_class)
  return ArraySplit(images=images[chosen], labels=new_labels, scale=16.0)


def check_subset(classes: Optional[Sequence[int]], per_class: Optional[int]) -> None:
  """ValueError (one line) for a bad `data.classes` / `data.train_per_class`."""
  if classes is not None:
    kept = list(classes)
    if (not kept or len(set(kept)) != len(kept) or
        any(isinstance(c, bool) or not isinstance(c, int) or not 0 <= c < NUM_CLASSES
            for c in kept)):
      raise ValueError(f'data.classes={classes!r}; must be distinct digits in 0..9 (None: all)')
  checks.positive_int('data.train_per_class', per_class, allow_none=True)


def subset(labels: np.ndarray, index: np.ndarray, classes: Optional[Sequence[int]],
           per_class: Optional[int]) -> tuple[np.ndarray, np.ndarray]:
  """(kept entries of `index`, their labels relabelled by position in `classes`)."""
  check_subset(classes, per_class)
  kept = list(range(NUM_CLASSES)) if classes is None else list(classes)
  keep = np.zeros(len(labels), bool)
  for c in kept:
    where = np.flatnonzero(labels == c)
    keep[where if per_class is None else where[:per_class]] = True
  relabel = np.full(NUM_CLASSES, -1, np.int32)
  relabel[kept] = np.arange(len(kept), dtype=np.int32)
  return index[keep], relabel[labels[keep]]


def num_examples(split: str, classes: Optional[Sequence[int]] = None,
                 per_class: Optional[int] = None) -> int:
  """Examples in a split (of the subset) without loading the images."""
  n = _parse(split)[1]
  if classes is None and per_class is None:
    return n
  return len(load(split, classes, per_class))
