"""`segfolder:PATH`: user segmentation data as images plus same-named PNG label maps.

Layout (that of mmseg's ADE20K folders):

    PATH/images/<split>/NAME.jpg|jpeg|png      RGB (grey is replicated)
    PATH/annotations/<split>/NAME.png          one uint8 class id per pixel

Splits are folder names (`train`, `val`, ...). Files are sorted by name.
Every image needs its mask, of the same height and width; label values must
be class ids in [0, data.seg.num_classes) or the ignore label 255 (after
`reduce_zero_label`, see `seg_pipeline.py`). Errors name the file.
"""
from __future__ import annotations

import os

import numpy as np
from PIL import Image

_IMAGE_EXTS = ('.jpg', '.jpeg', '.png')


def list_split(path: str, split: str) -> list[tuple[str, str]]:
  """(image file, mask file) pairs of `split`, sorted by name.

  Raises:
    ValueError: missing folders, no images, or an image without its mask.
  """
  image_dir = os.path.join(path, 'images', split)
  mask_dir = os.path.join(path, 'annotations', split)
  for d in (image_dir, mask_dir):
    if not os.path.isdir(d):
      raise ValueError(f"data.name='segfolder:{path}': folder {d!r} does not exist; expected "
                       'PATH/images/<split>/ and PATH/annotations/<split>/')
  names = sorted(f for f in os.listdir(image_dir) if f.lower().endswith(_IMAGE_EXTS))
  if not names:
    raise ValueError(f'{image_dir!r} holds no .jpg/.jpeg/.png images')
  pairs = []
  for name in names:
    mask = os.path.join(mask_dir, os.path.splitext(name)[0] + '.png')
    if not os.path.exists(mask):
      raise ValueError(f'{os.path.join(image_dir, name)!r} has no mask {mask!r}')
    pairs.append((os.path.join(image_dir, name), mask))
  return pairs


def read_pair(image_file: str, mask_file: str) -> tuple[np.ndarray, np.ndarray]:
  """(uint8 RGB `[H, W, 3]`, uint8 labels `[H, W]`); ValueError naming the files on a size mismatch."""
  with Image.open(image_file) as im:
    image = np.asarray(im.convert('RGB'))
  with Image.open(mask_file) as m:
    if m.mode not in ('L', 'P', 'I', 'I;16'):
      raise ValueError(f'mask {mask_file!r} has mode {m.mode}; expected a single-channel '
                       'PNG of class ids (mode L or P)')
    mask = np.asarray(m)
  if mask.shape != image.shape[:2]:
    raise ValueError(f'mask {mask_file!r} is {mask.shape[0]}x{mask.shape[1]} but its image '
                     f'{image_file!r} is {image.shape[0]}x{image.shape[1]}; they must match')
  return image, mask
