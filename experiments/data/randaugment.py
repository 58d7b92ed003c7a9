"""RandAugment (Cubuk et al. 2020) with timm's semantics, per example in TensorFlow.

`data.randaugment` takes timm's config string: 'rand' followed by
dash-separated sections in any order,

    m<M>     magnitude M (default 10) on timm's 0-10 scale
    n<N>     ops applied per image (default 2), drawn uniformly with replacement
    mstd<σ>  magnitude noise: each op draws M' ~ N(M, σ²); σ > 100 means
             M' ~ U(0, M) (default 0: M' = M)
    mmax<U>  clip M' to [0, U] instead of [0, 10]
    p<P>     each drawn op is applied with probability P (default 0.5)
    inc<0|1> the 'increasing' op set, whose severity grows with M (default 0)

e.g. DeiT's 'rand-m9-mstd0.5-inc1'. (timm reads any 'inc<x>' as true; here
'inc0' means false.) timm's transform-set section 't<name>' is not supported.

The op set (timm's `_RAND_TRANSFORMS`, or `_RAND_INCREASING_TRANSFORMS` with
inc1) and each op's argument at level v = M' (timm's `LEVEL_TO_ARG`):

    AutoContrast, Equalize, Invert           no argument
    Rotate                ±30·v/10 degrees
    Posterize             bits ⌊4v/10⌋            | Increasing: 4 - ⌊4v/10⌋
    Solarize              threshold min(256, ⌊256v/10⌋) | Increasing: 256 - that
    SolarizeAdd           add min(128, ⌊110v/10⌋) below 128
    Color, Contrast,      factor 1.8v/10 + 0.1   | Increasing: max(0.1, 1 ± 0.9v/10)
    Brightness, Sharpness
    ShearX, ShearY        ±0.3·v/10
    TranslateXRel/YRel    ±0.45·v/10 of the width/height

where ± is a fair coin. Geometric ops fill with the dataset mean
(round(255·mean), timm's `img_mean`) and resample with `interpolation`
('bicubic' as DeiT, 'bilinear', or 'random': either, per op, as timm's
default). The ops themselves are in `randaugment_ops.py`.

Randomness is stateless: every draw comes from the per-example seed
(`tf.random.stateless_*`), which the pipeline derives from (seed, stream
position), so a resumed run redraws exactly the same augmentation.
"""
from __future__ import annotations

import dataclasses
import functools
import math
import re
from typing import Optional, Sequence

import numpy as np

from experiments.data import randaugment_ops as ops

_LEVEL_DENOM = 10.0
# A constant folded into every example seed, so RandAugment's draws are
# independent of the other per-example draws keyed by the same seed.
_STREAM = 0x52414E44

TRANSFORMS = ('AutoContrast', 'Equalize', 'Invert', 'Rotate', 'Posterize', 'Solarize',
              'SolarizeAdd', 'Color', 'Contrast', 'Brightness', 'Sharpness', 'ShearX', 'ShearY',
              'TranslateXRel', 'TranslateYRel')
INCREASING_TRANSFORMS = ('AutoContrast', 'Equalize', 'Invert', 'Rotate', 'PosterizeIncreasing',
                         'SolarizeIncreasing', 'SolarizeAdd', 'ColorIncreasing',
                         'ContrastIncreasing', 'BrightnessIncreasing', 'SharpnessIncreasing',
                         'ShearX', 'ShearY', 'TranslateXRel', 'TranslateYRel')
INTERPOLATIONS = ('bicubic', 'bilinear', 'random')


@dataclasses.dataclass(frozen=True)
class Policy:
  """A parsed RandAugment config string."""
  num_layers: int = 2
  magnitude: float = 10.0
  magnitude_std: float = 0.0
  magnitude_max: Optional[float] = None
  prob: float = 0.5
  increasing: bool = False

  @property
  def ops(self) -> tuple[str, ...]:
    return INCREASING_TRANSFORMS if self.increasing else TRANSFORMS


def parse(spec: str) -> Policy:
  """Parses timm's 'rand-m9-n2-mstd0.5-...' string; ValueError (one line) if malformed."""
  if not isinstance(spec, str) or not spec.startswith('rand'):
    raise ValueError(f"data.randaugment={spec!r}; expected timm's 'rand-m<M>-n<N>-...' "
                     "string, e.g. 'rand-m9-mstd0.5-inc1'")
  parts = spec.split('-')
  if parts[0] != 'rand':
    raise ValueError(f"data.randaugment={spec!r} must start with 'rand-'")
  kw = {}
  keys = {'mstd': 'magnitude_std', 'mmax': 'magnitude_max', 'inc': 'increasing',
          'm': 'magnitude', 'n': 'num_layers', 'p': 'prob'}
  for part in parts[1:]:
    match = re.fullmatch(r'(mstd|mmax|inc|m|n|p)(\d+(?:\.\d*)?|inf)', part)
    if not match:
      raise ValueError(f'data.randaugment={spec!r}: unknown section {part!r}; valid: m<M>, '
                       'n<N>, mstd<σ>, mmax<U>, p<P>, inc<0|1>')
    key, value = match.groups()
    number = float(value)
    if key in ('n', 'inc', 'mmax') and number != int(number):
      raise ValueError(f'data.randaugment={spec!r}: {key} takes an integer, got {value!r}')
    if key == 'mstd' and number > 100:
      number = math.inf  # timm: uniform magnitudes in [0, M]
    if key == 'p' and not 0 <= number <= 1:
      raise ValueError(f'data.randaugment={spec!r}: p={number} must be a probability in [0, 1]')
    if key == 'n' and number < 1:
      raise ValueError(f'data.randaugment={spec!r}: n must be >= 1')
    kw[keys[key]] = {'n': int, 'inc': lambda v: bool(int(v))}.get(key, float)(number)
  return Policy(**kw)


def fill_colour(mean: Sequence[float], channels: int) -> tuple[int, ...]:
  """timm's fill: round(255·mean) per channel (the mean of `mean` if the counts differ)."""
  mean = np.asarray(mean, np.float64).reshape(-1)
  if mean.size != channels:
    mean = np.full(channels, mean.mean())
  return tuple(int(min(255, round(255 * m))) for m in mean)


def _level_arg(name: str, level, negate):
  """timm's LEVEL_TO_ARG for op `name` at level v (float64 tensor); None if no argument."""
  tf = ops._tf()  # pylint: disable=protected-access
  v = level / _LEVEL_DENOM
  sign = tf.where(negate, tf.constant(-1.0, tf.float64), tf.constant(1.0, tf.float64))
  trunc = lambda x: tf.cast(tf.floor(x), tf.int32)  # noqa: E731  int() of a value >= 0
  base = name.replace('Increasing', '')
  if base in ('AutoContrast', 'Equalize', 'Invert'):
    return None
  if name == 'Rotate':
    return sign * v * 30.0
  if name in ('ShearX', 'ShearY'):
    return sign * v * 0.3
  if name in ('TranslateXRel', 'TranslateYRel'):
    return sign * v * 0.45
  if name == 'Posterize':
    return trunc(v * 4)
  if name == 'PosterizeIncreasing':
    return 4 - trunc(v * 4)
  if name == 'Solarize':
    return tf.minimum(256, trunc(v * 256))
  if name == 'SolarizeIncreasing':
    return 256 - tf.minimum(256, trunc(v * 256))
  if name == 'SolarizeAdd':
    return tf.minimum(128, trunc(v * 110))
  if name.endswith('Increasing'):  # Color, Contrast, Brightness, Sharpness
    return tf.maximum(1.0 + sign * v * 0.9, tf.constant(0.1, tf.float64))
  return v * 1.8 + 0.1


_PIXEL_OPS = {
    'AutoContrast': ops.autocontrast, 'Equalize': ops.equalize, 'Invert': ops.invert,
    'Posterize': ops.posterize, 'Solarize': ops.solarize, 'SolarizeAdd': ops.solarize_add,
    'Color': ops.color, 'Contrast': ops.contrast, 'Brightness': ops.brightness,
    'Sharpness': ops.sharpness,
}
_GEOMETRIC_OPS = {
    'Rotate': ops.rotate, 'ShearX': ops.shear_x, 'ShearY': ops.shear_y,
    'TranslateXRel': ops.translate_x_rel, 'TranslateYRel': ops.translate_y_rel,
}


def apply_op(name: str, img, level, negate, fill: Sequence[int], bicubic):
  """Op `name` of timm's set at level `level` (float64) on uint8 `img` `[H, W, C]`.

  `negate` (bool tensor) is the ± coin; `bicubic` (bool tensor) picks
  bicubic over bilinear resampling for geometric ops.
  """
  tf = ops._tf()  # pylint: disable=protected-access
  arg = _level_arg(name, level, negate)
  base = name.replace('Increasing', '')
  if base in _PIXEL_OPS:
    fn = _PIXEL_OPS[base]
    out = fn(img) if arg is None else fn(img, arg)
  else:
    fn = _GEOMETRIC_OPS[name]
    out = tf.cond(bicubic, lambda: fn(img, arg, fill, 'bicubic'),
                  lambda: fn(img, arg, fill, 'bilinear'))
  return tf.ensure_shape(out, img.shape)


def augment_image(img, seed, policy: Policy, fill: Sequence[int], interpolation: str = 'bicubic'):
  """RandAugment on one uint8 `[H, W, C]` image with stateless int64 `seed` `[2]`."""
  tf = ops._tf()  # pylint: disable=protected-access
  if interpolation not in INTERPOLATIONS:
    raise ValueError(f'data.randaugment_interpolation={interpolation!r}; valid: '
                     f'{", ".join(INTERPOLATIONS)}')
  names = policy.ops
  seeds = tf.random.experimental.stateless_split(
      tf.random.experimental.stateless_fold_in(tf.cast(seed, tf.int64), _STREAM),
      policy.num_layers * 6)
  upper = policy.magnitude_max or _LEVEL_DENOM
  for layer in range(policy.num_layers):
    s = seeds[6 * layer:6 * layer + 6]
    which = tf.random.stateless_uniform([], s[0], 0, len(names), dtype=tf.int32)
    apply = tf.random.stateless_uniform([], s[1], dtype=tf.float64) <= policy.prob
    level = tf.constant(policy.magnitude, tf.float64)
    if math.isinf(policy.magnitude_std):
      level = tf.random.stateless_uniform([], s[2], dtype=tf.float64) * policy.magnitude
    elif policy.magnitude_std > 0:
      level = level + policy.magnitude_std * tf.random.stateless_normal(
          [], s[2], dtype=tf.float64)
    level = tf.clip_by_value(level, 0.0, float(upper))
    negate = tf.random.stateless_uniform([], s[3], dtype=tf.float64) > 0.5
    if interpolation == 'random':
      bicubic = tf.random.stateless_uniform([], s[4], dtype=tf.float64) < 0.5
    else:
      bicubic = tf.constant(interpolation == 'bicubic')
    branches = [functools.partial(apply_op, name, img, level, negate, fill, bicubic)
                for name in names]
    img = tf.cond(apply, lambda b=branches, w=which: tf.switch_case(w, b), lambda i=img: i)
  return img


def example_seed(key, position):
  """The stateless seed `[2]` of one example: (pipeline key, stream position)."""
  tf = ops._tf()  # pylint: disable=protected-access
  return tf.stack([tf.cast(key, tf.int64), tf.cast(position, tf.int64)])


@functools.lru_cache(maxsize=8)
def _batch_fn(policy: Policy, fill: tuple[int, ...], interpolation: str):
  tf = ops._tf()  # pylint: disable=protected-access

  @tf.function(reduce_retracing=True)
  def run(images, key, positions):
    def one(args):
      img, g = args
      return augment_image(img, example_seed(key, g), policy, fill, interpolation)
    return tf.map_fn(one, (images, positions), fn_output_signature=tf.uint8,
                     parallel_iterations=16)
  return run


def augment_batch(images: np.ndarray, key: int, positions: np.ndarray, policy: Policy,
                  fill: Sequence[int], interpolation: str = 'bicubic') -> np.ndarray:
  """RandAugment on each uint8 image of `[B, H, W, C]`, seeded by (key, position)."""
  run = _batch_fn(policy, tuple(int(f) for f in fill), interpolation)
  out = run(images, np.int64(key % (1 << 62)), np.asarray(positions, np.int64))
  return out.numpy()
