"""The data section of an experiment config: every input-pipeline knob.

    cfg = data.default_config()
    cfg.name = 'cifar10'; cfg.image_size = 32; cfg.augment = 'cifar'

Knobs (all live in one `ml_collections.ConfigDict`, so `--config.data.x=...`
overrides them from the command line):

- `name`: `'digits'` (scikit-learn's bundled 8x8 digits, no download),
  `'folder:PATH'` (PATH/<class>/*.png|jpg, classes sorted alphabetically), or
  any TFDS name (`'cifar10'`, `'cifar100'`, `'imagenet2012'`, ...).
- `image_size`: side of the square images the model sees. Sources whose
  images differ are resized bilinearly (half-pixel centres,
  `align_corners=False`, antialiased when shrinking; the digits' 8x8 grid
  is upsampled this way).
- `channels`: `None` keeps the dataset's own (digits: 1); `3` replicates a
  grey channel; `1` converts RGB to luma (ITU-R 601 weights).
- `train_split`, `eval_split`: `'train'` / `'test'` (digits, folder) or any
  TFDS split string (`'train[:90%]'`, `'validation'`). Digits: a deterministic
  stratified 80/20 split (scikit-learn `train_test_split`, random_state=0):
  `'train'` has 1437 examples, `'test'` 360.
- `augment`: `'none'`; `'flip'` (random horizontal flip); `'cifar'` (zero-pad
  4 pixels on each side, random `image_size` crop, random flip); `'shift'`
  (the CIFAR pad-and-crop without the flip, for data whose mirror image is
  another class or no class, such as digits);
  `'inception'` (random crop of area fraction in [0.08, 1] and aspect ratio
  in [3/4, 4/3], resized to `image_size`, random flip; evaluation then uses
  the central 87.5% crop, as in the Inception/DeiT recipes). Randomness is
  stateless, keyed by (seed, example position in the stream).
- `randaugment`: `None` (off) or timm's RandAugment string, e.g.
  `'rand-m9-mstd0.5-inc1'` (DeiT) or `'rand-m9-n2-mstd0.5'`: sections m<M>
  (magnitude, 0-10), n<N> (ops per image), mstd<σ> (magnitude noise; > 100:
  uniform), mmax<U>, p<P> (per-op probability), inc<0|1> (the increasing op
  set); see `randaugment.py`. Applied to training images only, after the
  crop/resize and before flips and normalization, as uint8 images.
- `randaugment_interpolation`: resampling of RandAugment's geometric ops:
  `'bicubic'` (DeiT), `'bilinear'`, or `'random'` (either, per op; timm's
  default).
- `random_erasing`: probability p in [0, 1] of erasing one random box with
  per-pixel N(0, 1) noise after normalization (Zhong et al.; timm's
  `reprob`, mode 'pixel'); 0 is off. See `erasing.py`.
- `cutout`: side of the zeroed square (DeVries & Taylor), 0 is off.
- `mean`, `std`: per-channel tuples applied after scaling pixels to [0, 1]:
  x <- (x - mean) / std. `None` picks the dataset's published statistics
  (CIFAR-10/100, ImageNet); digits and folder data compute theirs from the
  train split; other TFDS datasets use 0.5 / 0.5 (x in [-1, 1]).
- `shuffle_buffer`: tf.data shuffle buffer for TFDS data (in-memory sources
  always draw an exact uniform permutation per epoch).
- `classes`, `train_per_class` (digits only; `None`: all): keep the listed
  digits, relabelled 0..k-1 in the order listed, and only the first n
  training examples of each (a few-label task for transfer learning); see
  `digits.py`.
- `data_dir`: TFDS data directory (`None`: TFDS's default).
- `cache`: cache decoded TFDS examples in memory after the first epoch.
"""
from __future__ import annotations

import ml_collections

from experiments import checks
from experiments.data import randaugment

AUGMENTATIONS = ('none', 'flip', 'cifar', 'shift', 'inception')
# The augmentations that include a random horizontal flip.
FLIPPING = ('flip', 'cifar', 'inception')


def default_config() -> ml_collections.ConfigDict:
  """The default data config: digits at 8x8, no augmentation."""
  cfg = ml_collections.ConfigDict()
  cfg.name = 'digits'
  cfg.image_size = 8
  cfg.channels = ml_collections.FieldReference(None, field_type=int)
  cfg.train_split = 'train'
  cfg.eval_split = 'test'
  cfg.augment = 'none'
  cfg.randaugment = ml_collections.FieldReference(None, field_type=str)
  cfg.randaugment_interpolation = 'bicubic'
  cfg.random_erasing = 0.0
  cfg.cutout = 0
  cfg.mean = ml_collections.FieldReference(None, field_type=tuple)
  cfg.std = ml_collections.FieldReference(None, field_type=tuple)
  cfg.shuffle_buffer = 10_000
  cfg.classes = ml_collections.FieldReference(None, field_type=tuple)
  cfg.train_per_class = ml_collections.FieldReference(None, field_type=int)
  cfg.data_dir = ml_collections.FieldReference(None, field_type=str)
  cfg.cache = False
  return cfg


def validate(cfg: ml_collections.ConfigDict) -> None:
  """Raises ValueError for knob values no source accepts."""
  if not isinstance(cfg.name, str) or not cfg.name:
    raise ValueError(f'data.name={cfg.name!r} is not a dataset name; valid: digits, '
                     "folder:PATH, or a TFDS name such as 'cifar10'")
  checks.positive_int('data.image_size', cfg.image_size)
  if cfg.channels not in (None, 1, 3):
    raise ValueError(f'data.channels={cfg.channels!r}; valid: None, 1, 3')
  if cfg.augment not in AUGMENTATIONS:
    raise ValueError(f'data.augment={cfg.augment!r}; valid: {", ".join(AUGMENTATIONS)}')
  validate_regularizers(cfg)
  if cfg.get('classes') is not None or cfg.get('train_per_class') is not None:
    if cfg.name != 'digits':
      raise ValueError(f'data.classes / data.train_per_class select digits subsets; '
                       f'data.name={cfg.name!r} is not digits')
    from experiments.data import digits  # pylint: disable=g-import-not-at-top  (sklearn)
    digits.check_subset(cfg.get('classes'), cfg.get('train_per_class'))
  if (cfg.mean is None) != (cfg.std is None):
    raise ValueError(f'data.mean={cfg.mean!r} and data.std={cfg.std!r} must be both set '
                     'or both None')
  if cfg.std is not None and any(float(s) <= 0 for s in cfg.std):
    raise ValueError(f'data.std={cfg.std!r}; every entry must be > 0')
  checks.positive_int('data.shuffle_buffer', cfg.shuffle_buffer)


def validate_regularizers(cfg: ml_collections.ConfigDict) -> None:
  """Checks randaugment, randaugment_interpolation, random_erasing and cutout (absent: off)."""
  spec = cfg.get('randaugment')
  if spec is not None:
    randaugment.parse(spec)
  interpolation = cfg.get('randaugment_interpolation', 'bicubic')
  if interpolation not in randaugment.INTERPOLATIONS:
    raise ValueError(f'data.randaugment_interpolation={interpolation!r}; valid: '
                     f'{", ".join(randaugment.INTERPOLATIONS)}')
  p = cfg.get('random_erasing', 0.0)
  if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p <= 1:
    raise ValueError(f'data.random_erasing={p!r}; must be a probability in [0, 1]')
  size = cfg.get('cutout', 0)
  if isinstance(size, bool) or not isinstance(size, int) or size < 0:
    raise ValueError(f'data.cutout={size!r}; must be an int >= 0 (the square side, 0: off)')
