"""Image-folder source: `folder:PATH` with one subfolder of images per class.

    PATH/<class_name>/*.png|jpg|jpeg          (split 80/20 here), or
    PATH/train/<class_name>/*  and  PATH/val/<class_name>/*

Class ids follow the alphabetical order of the class folder names (of
PATH/train when split folders exist). Splits: 'train' and 'val' ('test' and
'validation' are accepted as aliases of 'val'). Without train/val folders
the split is deterministic and stratified: within each class the files are
sorted by name, permuted with a fixed seed (0), and the first
round(0.2 n) go to 'val'. Images are decoded with Pillow, converted to grey
if every sampled file is grey (else RGB), resized bilinearly to
`image_size` and held in memory as uint8, so this source suits datasets of
up to a few hundred thousand small images; larger ones belong in TFDS.
"""
from __future__ import annotations

import os
from typing import Sequence

import numpy as np
from PIL import Image

from experiments.data import augment as aug
from experiments.data.source import ArraySplit

EXTENSIONS = ('.png', '.jpg', '.jpeg')
_EVAL_ALIASES = ('val', 'test', 'validation')
_GREY_MODES = ('1', 'L', 'LA', 'I', 'I;16', 'F')


def _check_split(split: str) -> str:
  if split == 'train':
    return 'train'
  if split in _EVAL_ALIASES:
    return 'val'
  raise ValueError(f'folder split {split!r} is unknown; valid: train, val (or test)')


def _class_files(root: str) -> dict[str, list[str]]:
  classes = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
  out = {}
  for c in classes:
    files = sorted(f for f in os.listdir(os.path.join(root, c))
                   if f.lower().endswith(EXTENSIONS))
    out[c] = [os.path.join(root, c, f) for f in files]
  return out


def list_split(path: str, split: str) -> tuple[list[str], np.ndarray, list[str]]:
  """Files, int32 labels and class names of one split, in canonical order.

  Raises:
    ValueError: if PATH is missing, has no class folders, or holds no images.
  """
  which = _check_split(split)
  if not os.path.isdir(path):
    raise ValueError(f"data.name='folder:{path}': {path!r} is not a directory; expected "
                     'PATH/<class_name>/*.png|jpg')
  has_split_dirs = all(os.path.isdir(os.path.join(path, d)) for d in ('train', 'val'))
  train_root = os.path.join(path, 'train') if has_split_dirs else path
  train_files = _class_files(train_root)
  classes = list(train_files)
  if not classes or not any(train_files.values()):
    raise ValueError(f"data.name='folder:{path}': no images found under {train_root!r}; "
                     f'expected <class_name>/ subfolders holding {"|".join(EXTENSIONS)} files')
  if has_split_dirs:
    if which == 'train':
      per_class = train_files
    else:
      per_class = _class_files(os.path.join(path, 'val'))
      extra = sorted(set(per_class) - set(classes))
      if extra:
        raise ValueError(f'{os.path.join(path, "val")!r} has classes {extra} that '
                         f'{train_root!r} lacks')
  else:
    per_class = {}
    for c, files in train_files.items():
      order = np.random.default_rng(0).permutation(len(files))
      n_val = int(round(0.2 * len(files)))
      chosen = order[:n_val] if which == 'val' else order[n_val:]
      per_class[c] = [files[i] for i in sorted(chosen)]
  files, labels = [], []
  for label, c in enumerate(classes):
    for f in per_class.get(c, []):
      files.append(f)
      labels.append(label)
  return files, np.asarray(labels, np.int32), classes


def native_channels(files: Sequence[str], sample: int = 16) -> int:
  """1 if the first `sample` files are all grey, else 3."""
  for f in files[:sample]:
    try:
      with Image.open(f) as im:
        if im.mode not in _GREY_MODES:
          return 3
    except (OSError, ValueError) as e:
      raise ValueError(f'cannot decode image {f!r}: {e}') from e
  return 1


def load(path: str, split: str, image_size: int) -> ArraySplit:
  """Decodes a split into uint8 `[N, image_size, image_size, C]` (see module docstring)."""
  files, labels, _ = list_split(path, split)
  train_files, _, _ = list_split(path, 'train')
  channels = native_channels(train_files)
  mode = 'L' if channels == 1 else 'RGB'
  images = np.zeros((len(files), image_size, image_size, channels), np.uint8)
  for i, f in enumerate(files):
    try:
      with Image.open(f) as im:
        x = np.asarray(im.convert(mode), np.float32).reshape(im.size[1], im.size[0], channels)
    except (OSError, ValueError) as e:
      raise ValueError(f'cannot decode image {f!r}: {e}') from e
    x = aug.resize(x[None], image_size)[0]
    images[i] = np.clip(np.round(x), 0, 255).astype(np.uint8)
  return ArraySplit(images=images, labels=labels, scale=255.0)
