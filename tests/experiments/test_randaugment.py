"""RandAugment: every op of timm's sets against PIL (±1 grey level), the config string, the draws."""
from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image
from PIL import ImageEnhance
from PIL import ImageOps

from experiments.data import randaugment as ra
from experiments.data import randaugment_ops as ops

FILL = (124, 116, 104)
RESAMPLE = {'bilinear': Image.BILINEAR, 'bicubic': Image.BICUBIC, 'nearest': Image.NEAREST}


def _tf():
  return ops._tf()  # pylint: disable=protected-access


def _image(seed, h=29, w=36, c=3):
  """Smooth structure plus noise, away from the extremes (so LUT ops are not trivial)."""
  rng = np.random.default_rng(seed)
  coarse = rng.integers(0, 256, size=(h // 4 + 2, w // 4 + 2, c)).astype(np.uint8)
  pil = Image.fromarray(coarse if c == 3 else coarse[..., 0]).resize((w, h), Image.BILINEAR)
  x = np.asarray(pil).reshape(h, w, c).astype(np.int32) + rng.integers(-25, 25, size=(h, w, c))
  return np.clip(x, 20, 230).astype(np.uint8)


def _to_pil(x):
  return Image.fromarray(x if x.shape[-1] == 3 else x[..., 0])


def _from_pil(p, c):
  return np.asarray(p).reshape(p.size[1], p.size[0], c)


def _pil_affine(p, matrix, interpolation, fill):
  return p.transform(p.size, Image.AFFINE, matrix, resample=RESAMPLE[interpolation],
                     fillcolor=fill)


def _timm_reference(name, level, negate, p, interpolation, fill):
  """What timm's AugmentOp does with PIL at magnitude `level` and coin `negate` (its formulas)."""
  v = level / 10.0
  sign = -1.0 if negate else 1.0
  w, h = p.size
  if name == 'AutoContrast':
    return ImageOps.autocontrast(p)
  if name == 'Equalize':
    return ImageOps.equalize(p)
  if name == 'Invert':
    return ImageOps.invert(p)
  if name == 'Rotate':
    return p.rotate(sign * v * 30.0, resample=RESAMPLE[interpolation], fillcolor=fill)
  if name.startswith('Posterize'):
    bits = int(v * 4)
    bits = 4 - bits if name.endswith('Increasing') else bits
    if bits == 0:  # PIL >= 10 refuses 0 bits; older PIL (and TF's RandAugment) give black
      return p.point(lambda i: 0)
    return p if bits >= 8 else ImageOps.posterize(p, bits)
  if name.startswith('SolarizeAdd'):
    add = min(128, int(v * 110))
    return p.point([min(255, i + add) if i < 128 else i for i in range(256)] * len(p.getbands()))
  if name.startswith('Solarize'):
    thr = min(256, int(v * 256))
    return ImageOps.solarize(p, 256 - thr if name.endswith('Increasing') else thr)
  enhancers = {'Color': ImageEnhance.Color, 'Contrast': ImageEnhance.Contrast,
               'Brightness': ImageEnhance.Brightness, 'Sharpness': ImageEnhance.Sharpness}
  base = name.replace('Increasing', '')
  if base in enhancers:
    factor = max(0.1, 1.0 + sign * v * 0.9) if name.endswith('Increasing') else v * 1.8 + 0.1
    return enhancers[base](p).enhance(factor)
  if name == 'ShearX':
    return _pil_affine(p, (1, sign * v * 0.3, 0, 0, 1, 0), interpolation, fill)
  if name == 'ShearY':
    return _pil_affine(p, (1, 0, 0, sign * v * 0.3, 1, 0), interpolation, fill)
  if name == 'TranslateXRel':
    return _pil_affine(p, (1, 0, sign * v * 0.45 * w, 0, 1, 0), interpolation, fill)
  if name == 'TranslateYRel':
    return _pil_affine(p, (1, 0, 0, 0, 1, sign * v * 0.45 * h), interpolation, fill)
  raise AssertionError(name)


ALL_OPS = sorted(set(ra.TRANSFORMS) | set(ra.INCREASING_TRANSFORMS))


@pytest.mark.parametrize('name', ALL_OPS)
def test_every_op_matches_pil_within_one_level(name):
  tf = _tf()
  worst = 0
  for k, (level, negate, interpolation, c) in enumerate(
      [(9.0, False, 'bicubic', 3), (6.3, True, 'bilinear', 3), (2.0, True, 'bicubic', 1),
       (10.0, False, 'bilinear', 1), (0.7, False, 'bilinear', 3)]):
    x = _image(k, c=c)
    fill = FILL[:c] if c == 3 else FILL[0]
    ours = ra.apply_op(name, tf.constant(x), tf.constant(level, tf.float64), tf.constant(negate),
                       FILL[:c], tf.constant(interpolation == 'bicubic')).numpy()
    want = _from_pil(_timm_reference(name, level, negate, _to_pil(x), interpolation, fill), c)
    diff = np.abs(ours.astype(int) - want.astype(int))
    worst = max(worst, diff.max())
    # ±1 only from float rounding in interpolation; never a systematic shift.
    assert diff.max() <= 1 and (diff > 0).mean() < 0.05, (name, level, interpolation, c)
  if name in ('AutoContrast', 'Equalize', 'Invert') or 'olarize' in name or 'osterize' in name:
    assert worst == 0  # look-up tables are exact


@pytest.mark.parametrize('interpolation', ['nearest', 'bilinear', 'bicubic'])
def test_affine_resampling_matches_pil(interpolation):
  tf = _tf()
  x = _image(7, h=31, w=24)
  for matrix in [(0.9, 0.2, 3.3, -0.15, 1.1, -2.7), (1, 0, -5.5, 0, 1, 0.25)]:
    ours = ops.affine(tf.constant(x), matrix, FILL, interpolation).numpy()
    want = _from_pil(_pil_affine(_to_pil(x), matrix, interpolation, FILL), 3)
    diff = np.abs(ours.astype(int) - want.astype(int))
    assert diff.max() <= 1 and (diff > 0).mean() < 0.05
  for degrees in (13.0, -29.5, 180.0):
    ours = ops.rotate(tf.constant(x), degrees, FILL, interpolation).numpy()
    want = _from_pil(_to_pil(x).rotate(degrees, resample=RESAMPLE[interpolation],
                                       fillcolor=FILL), 3)
    diff = np.abs(ours.astype(int) - want.astype(int))
    assert diff.max() <= 1 and (diff > 0).mean() < 0.05


def test_parse_timm_strings():
  p = ra.parse('rand-m9-mstd0.5-inc1')
  assert p == ra.Policy(num_layers=2, magnitude=9.0, magnitude_std=0.5, prob=0.5,
                        increasing=True)
  assert p.ops == ra.INCREASING_TRANSFORMS
  p = ra.parse('rand-n3-m7-p1.0-mmax12-mstd101')
  assert (p.num_layers, p.magnitude, p.prob, p.magnitude_max) == (3, 7.0, 1.0, 12.0)
  assert math.isinf(p.magnitude_std) and p.ops == ra.TRANSFORMS
  assert ra.parse('rand') == ra.Policy()
  assert not ra.parse('rand-inc0').increasing
  for bad in ('rand-m9-x3', 'randaug', 'auto-m9', 'rand-n0', 'rand-p1.5', 'rand-tweights',
              'rand-n2.5', 'rand-m'):
    with pytest.raises(ValueError, match='data.randaugment') as e:
      ra.parse(bad)
    assert '\n' not in str(e.value)


def test_fill_colour_is_timm_img_mean():
  assert ra.fill_colour((0.485, 0.456, 0.406), 3) == (124, 116, 104)
  assert ra.fill_colour((0.5,), 1) == (128,)


def test_draws_are_stateless_and_cover_the_op_set():
  policy = ra.Policy(num_layers=1, magnitude=9, prob=1.0)
  x = np.stack([_image(s, h=16, w=16) for s in range(4)] * 50)  # 200 images
  pos = np.arange(200)
  a = ra.augment_batch(x, 5, pos, policy, FILL)
  b = ra.augment_batch(x, 5, pos, policy, FILL)
  np.testing.assert_array_equal(a, b)
  c = ra.augment_batch(x, 6, pos, policy, FILL)
  assert np.mean(np.any(a != c, axis=(1, 2, 3))) > 0.5
  # Which op was applied: compare with each op's outputs on the 4 distinct images.
  tf = _tf()
  candidates = {}
  for j in range(4):
    for name in policy.ops:  # geometric ops: both coins (bicubic is the default resampling)
      candidates[j, name] = [
          ra.apply_op(name, tf.constant(x[j]), tf.constant(9.0, tf.float64), tf.constant(neg),
                      FILL, tf.constant(True)).numpy() for neg in (False, True)]
  hits = {}
  for i in range(200):
    for name in policy.ops:
      if any(np.array_equal(o, a[i]) for o in candidates[i % 4, name]):
        hits[name] = hits.get(name, 0) + 1
        break
  assert set(hits) == set(policy.ops)  # all 15 ops drawn among 200 (P(miss) < 1e-4 each)


def test_magnitude_zero_with_prob_zero_is_identity():
  x = np.stack([_image(s, h=12, w=12) for s in range(6)])
  out = ra.augment_batch(x, 0, np.arange(6), ra.Policy(num_layers=3, prob=0.0), FILL)
  np.testing.assert_array_equal(out, x)
