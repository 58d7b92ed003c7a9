"""Dense (segmentation) sources behind the input pipeline's contract.

    cfg.name = 'shapes' | 'segfolder:PATH' | 'scene_parse150'   (TFDS, ADE20K)
    cfg.augment = 'seg' (the mmseg train pipeline, `seg_augment.py`) | 'none'
    cfg.seg = ConfigDict(num_classes, reduce_zero_label, scale, ratio_range,
                         cat_max_ratio, flip, photometric, pad, eval_size,
                         eval_scale, eval_label_size)

Batches: train `image=float32[D, B/D, S, S, 3]`, `label=int32[D, B/D, S, S]`
(S = `image_size`, the crop; 255 = ignore). Eval batches are scored at the
original label resolution (mmseg's protocol): each image is resized keeping
its aspect ratio to fit the `E×E` canvas (E = `seg.eval_size`, default S; not
at all when it is already E×E, e.g. `shapes`) and padded bottom/right with
the normalization mean (0 once normalized, as mmseg pads),
while its labels stay as they are, padded with 255 to the batch's label
canvas `L_h×L_w`: `seg.eval_label_size` (square, fixed) when set, else the
batch's largest label rounded up to a multiple of max(E/2, 1) (one compile
of the scoring function per canvas; several processes need the fixed one,
so every host builds the same shapes). Eval batches hold
`image=float32[D, B/D, E, E, 3]`, `label=int32[D, B/D, L_h, L_w]`,
`mask=bool[D, B/D]` (example validity, as for classification),
`image_size=int32[D, B/D, 2]` (the resized image's `(h, w)` in the canvas)
and `label_size=int32[D, B/D, 2]` (the original `(H, W)`); the segmentation
task resizes the `h×w` logits block to `H×W` before scoring. Padded
examples are all-255.

`seg.eval_scale = (long, short)` resizes eval images as mmseg's test
pipeline does instead (`Resize(scale, keep_ratio=True)`, ADE20K
(2048, 512): short side 512 unless the long side would pass 2048); the image
canvas is then per batch, the largest resized image rounded up to a
multiple of 128 (one forward compile per canvas; single process only), and
so is the label canvas unless `eval_label_size` is set.

Labels: `reduce_zero_label` (ADE20K) maps 0 (“other”) to 255 and c to c − 1;
afterwards every value must be in [0, num_classes) or 255, else a
ValueError names the example.

TFDS `scene_parse150` holds instance, not scene-parsing, annotations: its
builder (tensorflow_datasets/datasets/scene_parse150/
scene_parse150_dataset_builder.py, TFDS 4.9.10) reads the `annotation` PNG
(an RGB `tfds.features.Image`) from ChallengeData2017's
`annotations_instance.tar`, whose format (CSAILVision/placeschallenge,
instancesegmentation/README.md) is: R = category id of the 100 instance
("thing") classes, 1..100, and 0 where no such object is; G = instance id;
B unused. `scene_parse150_labels` reads R and maps it to the SceneParse150
id (0 = other, 1..150) through the published Instance100 -> SceneParse150
table (CSAILVision/ADE20K utils/ade20k_instance_catid_mapping.txt), so the
ids and class names are the 150-class benchmark's; with reduce_zero_label,
0 -> 255 and k -> k − 1 as for ADEChallengeData2016. The 50 stuff classes
(wall, building, sky, floor, road, ...) are not in these annotations: their
pixels read 0 and are ignored, so mIoU on this data is not the ADE20K
benchmark's. For that, prepare ADEChallengeData2016 (images/, annotations/)
and use `segfolder:PATH`.

Randomness: example at stream position g (step·B + process offset + j)
draws its augmentation from `np.random.default_rng([seed, g])`, so resumed
runs see exactly the batches of an uninterrupted one. Images are scaled to
[0, 1] and normalized by `data.mean`/`data.std` (default ImageNet's, as
SegFormer).

Knob defaults (`SEG_DEFAULTS`): scale (base (long, short) of the random
rescale) None = (S, S); ratio_range (0.5, 2.0); cat_max_ratio 0.75; flip
and photometric True; pad True (a crop side longer than the rescaled image
is cut to it and the result padded to the crop after the photometric step,
image with the mean, mask with 255; with False such a crop is an error);
eval_size None (= S); eval_scale None (fit into eval_size); eval_label_size
None (per-batch label canvas, see above).
"""
from __future__ import annotations

import itertools
from typing import Any, Iterable, Iterator, Optional

import ml_collections
import numpy as np

from experiments import checks
from experiments.data import arrays
from experiments.data import seg_augment as seg_aug
from experiments.data import seg_folder
from experiments.data import shapes
from experiments.data.source import DatasetInfo

Batch = dict[str, np.ndarray]
SEGFOLDER_PREFIX = 'segfolder:'
TFDS_NAMES = {'scene_parse150': 150}
AUGMENTATIONS = ('none', 'seg')
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
SEG_DEFAULTS = dict(num_classes=None, reduce_zero_label=False, scale=None,
                    ratio_range=(0.5, 2.0), cat_max_ratio=0.75, flip=True, photometric=True,
                    pad=True, eval_size=None, eval_scale=None, eval_label_size=None)
EVAL_CANVAS_MULTIPLE = 128  # per-batch canvases with eval_scale: few distinct shapes
IGNORE = seg_aug.IGNORE_LABEL


def _ceil_to(n: int, multiple: int) -> int:
  """n rounded up to a multiple of `multiple` (canvas sides)."""
  return -(-n // multiple) * multiple


def _tfds_base(name: str) -> str:
  return name.split(':')[0].split('/')[0]


def is_segmentation(cfg: ml_collections.ConfigDict) -> bool:
  """Whether `cfg.name` is a dense source handled here."""
  name = cfg.get('name') or ''
  return (name == 'shapes' or name.startswith(SEGFOLDER_PREFIX) or
          _tfds_base(name) in TFDS_NAMES)


def _kind(cfg) -> str:
  if cfg.name == 'shapes':
    return 'shapes'
  if cfg.name.startswith(SEGFOLDER_PREFIX):
    if not cfg.name[len(SEGFOLDER_PREFIX):]:
      raise ValueError("data.name='segfolder:' needs a path: 'segfolder:PATH'")
    return 'segfolder'
  return 'tfds'


def seg_options(cfg: ml_collections.ConfigDict) -> dict[str, Any]:
  """`SEG_DEFAULTS` updated with `cfg.seg`; ValueError on unknown keys or bad values."""
  opts = dict(SEG_DEFAULTS)
  given = cfg.get('seg')
  given = given.to_dict() if given is not None else {}
  unknown = sorted(set(given) - set(opts))
  if unknown:
    raise ValueError(f'data.seg has unknown key(s) {unknown}; valid: {sorted(opts)}')
  opts.update({k: v for k, v in given.items() if v is not None})
  if cfg.augment not in AUGMENTATIONS:
    raise ValueError(f'data.augment={cfg.augment!r} for segmentation data {cfg.name!r}; '
                     f'valid: {", ".join(AUGMENTATIONS)}')
  checks.positive_int('data.image_size', cfg.image_size)  # the crop
  for key in ('randaugment', 'random_erasing', 'cutout'):
    if cfg.get(key):
      raise ValueError(f'data.{key}={cfg.get(key)!r} augments classification images only; '
                       f'segmentation data {cfg.name!r} needs it off')
  lo, hi = opts['ratio_range']
  if not 0 < lo <= hi:
    raise ValueError(f'data.seg.ratio_range={opts["ratio_range"]!r}; need 0 < low <= high')
  if not 0 < opts['cat_max_ratio'] <= 1:
    raise ValueError(f'data.seg.cat_max_ratio={opts["cat_max_ratio"]!r}; must be in (0, 1]')
  for key in ('eval_size', 'eval_label_size'):
    checks.positive_int(f'data.seg.{key}', opts[key], allow_none=True)
  scale = opts['eval_scale']
  if scale is not None and (len(scale) != 2 or min(scale) < 1):
    raise ValueError(f'data.seg.eval_scale={scale!r}; must be None or (long, short) sides >= 1')
  return opts


def _num_classes(cfg, opts) -> int:
  kind = _kind(cfg)
  if kind == 'shapes':
    return shapes.NUM_CLASSES
  if opts['num_classes']:
    return int(opts['num_classes'])
  if kind == 'tfds':
    return TFDS_NAMES[_tfds_base(cfg.name)]
  raise ValueError(f"data.seg.num_classes is not set for {cfg.name!r}; set it to the number "
                   'of classes in the masks')


def prepare_labels(mask: np.ndarray, num_classes: int, reduce_zero_label: bool,
                   name: str) -> np.ndarray:
  """int32 labels after `reduce_zero_label`, checked to be in [0, K) or 255."""
  y = mask.astype(np.int32)
  if reduce_zero_label:
    y = np.where(y == 0, IGNORE, y - 1)
    y[y == IGNORE - 1] = IGNORE
  bad = (y != IGNORE) & ((y < 0) | (y >= num_classes))
  if bad.any():
    values = np.unique(y[bad])[:5].tolist()
    raise ValueError(f'{name}: label values {values} are outside [0, {num_classes}) and are '
                     f'not the ignore label {IGNORE} (reduce_zero_label={reduce_zero_label}); '
                     'fix the mask or data.seg.num_classes')
  return y


class _Transform:
  """Per-example train/eval transform and the batch normalization."""

  def __init__(self, cfg, opts, num_classes: int):
    self.cfg, self.opts, self.k = cfg, opts, num_classes
    self.size = cfg.image_size
    self.eval_size = int(opts['eval_size'] or self.size)
    mean = cfg.mean if cfg.get('mean') is not None else IMAGENET_MEAN
    std = cfg.std if cfg.get('std') is not None else IMAGENET_STD
    self.mean = np.broadcast_to(np.asarray(mean, np.float32), (3,))
    self.inv_std = 1.0 / np.broadcast_to(np.asarray(std, np.float32), (3,))

  def _check(self, image: np.ndarray, mask: np.ndarray, name: str):
    if image.ndim == 2:
      image = image[..., None]
    if image.shape[-1] == 1:
      image = np.repeat(image, 3, axis=-1)
    if mask.shape != image.shape[:2]:
      raise ValueError(f'{name}: mask is {mask.shape[0]}x{mask.shape[1]} but the image is '
                       f'{image.shape[0]}x{image.shape[1]}; they must be the same size')
    labels = prepare_labels(mask, self.k, self.opts['reduce_zero_label'], name)
    return image.astype(np.float32) / np.float32(255.0), labels

  def _fit(self, x: np.ndarray, e: int) -> np.ndarray:
    """`x` resized keeping its aspect ratio to fit `e×e` (unchanged when it is e×e)."""
    if x.shape[:2] == (e, e):
      return x
    f = min(e / x.shape[0], e / x.shape[1])
    hw = (min(max(int(x.shape[0] * f + 0.5), 1), e), min(max(int(x.shape[1] * f + 0.5), 1), e))
    return seg_aug.resize_image(x, hw)

  def train(self, image, mask, rng: np.random.Generator, name: str):
    o, s = self.opts, self.size
    x, y = self._check(image, mask, name)
    if self.cfg.augment == 'none':  # fit into the crop; labels follow (nearest)
      x = self._fit(x, s)
      return seg_aug.pad_to(x, seg_aug.resize_mask(y, x.shape[:2]), (s, s), self.mean)
    x, y = seg_aug.random_rescale(x, y, rng, o['scale'] or (s, s), o['ratio_range'])
    x, y = seg_aug.random_crop(x, y, rng, (s, s), o['cat_max_ratio'], name=name, clip=o['pad'])
    if o['flip']:
      x, y = seg_aug.flip(x, y, rng)
    if o['photometric']:
      x = seg_aug.photometric_distortion(x, rng)
    return seg_aug.pad_to(x, y, (s, s), self.mean)

  def eval(self, image, mask, name: str) -> tuple[np.ndarray, np.ndarray]:
    """`(resized image, original labels)`: fitted into E×E, or mmseg-rescaled to eval_scale."""
    x, y = self._check(image, mask, name)
    scale = self.opts['eval_scale']
    if scale is None:
      return self._fit(x, self.eval_size), y
    return seg_aug.resize_image(x, seg_aug.rescale_size(x.shape, scale)), y

  def normalize(self, x: np.ndarray) -> np.ndarray:
    out = np.subtract(x, self.mean, dtype=np.float32)
    out *= self.inv_std
    return out


def _batch(xs, ys, transform: _Transform, num_local_devices: int) -> Batch:
  image = transform.normalize(np.stack(xs))
  return {'image': arrays.to_devices(image, num_local_devices),
          'label': arrays.to_devices(np.stack(ys).astype(np.int32), num_local_devices)}


# ---------------------------------------------------------------------------
# In-memory sources: shapes and segfolder.
# ---------------------------------------------------------------------------

class _Examples:
  """An in-memory split: lists of uint8 images, raw masks and names."""

  def __init__(self, cfg, split: str):
    kind = _kind(cfg)
    if kind == 'shapes':
      images, masks = shapes.load(split, cfg.image_size)
      self.images, self.masks = list(images), list(masks)
      self.names = [f'shapes {split} example {i}' for i in range(len(images))]
    else:
      pairs = seg_folder.list_split(cfg.name[len(SEGFOLDER_PREFIX):], split)
      loaded = [seg_folder.read_pair(*p) for p in pairs]
      self.images = [a for a, _ in loaded]
      self.masks = [m for _, m in loaded]
      self.names = [p[1] for p in pairs]

  def __len__(self) -> int:
    return len(self.images)


def _num_examples(cfg, split: str) -> int:
  kind = _kind(cfg)
  if kind == 'shapes':
    return shapes.num_examples(split)
  if kind == 'segfolder':
    return len(seg_folder.list_split(cfg.name[len(SEGFOLDER_PREFIX):], split))
  from experiments.data import tfds_source  # pylint: disable=g-import-not-at-top
  return tfds_source._num_examples(tfds_source.builder(cfg), split)  # pylint: disable=protected-access


def get_info(cfg: ml_collections.ConfigDict) -> DatasetInfo:
  opts = seg_options(cfg)
  s = cfg.image_size
  return DatasetInfo(_num_classes(cfg, opts), (s, s, 3), _num_examples(cfg, cfg.train_split),
                     _num_examples(cfg, cfg.eval_split))


def make_train_iterator(cfg: ml_collections.ConfigDict, global_batch_size: int, seed: int,
                        start_step: int, num_local_devices: int, process_index: int,
                        process_count: int) -> Iterator[Batch]:
  """Infinite training batches of this process (see module docstring)."""
  opts = seg_options(cfg)
  transform = _Transform(cfg, opts, _num_classes(cfg, opts))
  local = global_batch_size // process_count
  offset = process_index * local
  if _kind(cfg) == 'tfds':
    return _tfds_train(cfg, transform, global_batch_size, seed, start_step, num_local_devices,
                       process_index, process_count)
  data = _Examples(cfg, cfg.train_split)

  def batches():
    n = len(data)
    perms: dict[int, np.ndarray] = {}
    for step in itertools.count(start_step):
      g = step * global_batch_size + offset + np.arange(local, dtype=np.int64)
      xs, ys = [], []
      for pos in g:
        e = int(pos // n)
        if e not in perms:
          perms.clear()
          perms[e] = arrays.epoch_permutation(seed, e, n)
        i = int(perms[e][pos % n])
        rng = np.random.default_rng([seed & 0xFFFFFFFF, int(pos)])
        x, y = transform.train(data.images[i], data.masks[i], rng, data.names[i])
        xs.append(x)
        ys.append(y)
      yield _batch(xs, ys, transform, num_local_devices)

  return batches()


class _EvalIterable:
  """Re-iterable padded pass over an eval split (each `iter` is a fresh pass)."""

  def __init__(self, cfg, transform: _Transform, local_batch: int, num_local_devices: int,
               process_index: int, process_count: int):
    self._cfg, self._t, self._local, self._d = cfg, transform, local_batch, num_local_devices
    self._pi, self._pc = process_index, process_count
    self._label_size = transform.opts['eval_label_size']
    if process_count > 1 and transform.opts['eval_scale'] is not None:
      raise ValueError(f'data.seg.eval_scale={tuple(transform.opts["eval_scale"])!r} gives '
                       f'every batch its own image canvas, which {process_count} processes '
                       'evaluating in lockstep cannot share; use eval_scale=None (images fitted '
                       'into data.seg.eval_size)')
    if process_count > 1 and self._label_size is None:
      raise ValueError(f'{process_count} processes evaluate in lockstep and need the same '
                       'label canvas: set data.seg.eval_label_size to the largest label side '
                       'of the eval split (e.g. 2048 for ADE20K)')
    n = _num_examples(cfg, cfg.eval_split)
    self._lo, self._hi = arrays.shard_bounds(n, process_index, process_count)
    largest = max(b - a for a, b in (arrays.shard_bounds(n, p, process_count)
                                     for p in range(process_count)))
    _, self._len = arrays.eval_batching(largest, local_batch, num_local_devices)
    self._data = None

  def __len__(self) -> int:
    return self._len

  def _examples(self) -> Iterator[tuple[np.ndarray, np.ndarray, str]]:
    if _kind(self._cfg) == 'tfds':
      yield from _tfds_eval_examples(self._cfg, self._pi, self._pc)
      return
    if self._data is None:
      self._data = _Examples(self._cfg, self._cfg.eval_split)
    for i in range(self._lo, self._hi):
      yield self._data.images[i], self._data.masks[i], self._data.names[i]

  def _round_up(self, sizes: list[tuple[int, ...]]) -> tuple[int, int]:
    """The largest of `sizes` rounded up to the canvas multiple."""
    if self._t.opts['eval_scale'] is not None:
      g = EVAL_CANVAS_MULTIPLE
    else:
      g = max(self._t.eval_size // 2, 1)
    return tuple(_ceil_to(max(hw[a] for hw in sizes), g) for a in (0, 1))  # type: ignore

  def _label_canvas(self, ys: list[np.ndarray], names: list[str]) -> tuple[int, int]:
    if self._label_size is not None:
      side = self._label_size
      for y, name in zip(ys, names):
        if y.shape[0] > side or y.shape[1] > side:
          raise ValueError(f'{name}: labels are {y.shape[0]}x{y.shape[1]}, larger than '
                           f'data.seg.eval_label_size={side}; raise it to at least '
                           f'{max(y.shape)}')
      return side, side
    return self._round_up([y.shape for y in ys])

  def __iter__(self) -> Iterator[Batch]:
    e, d, local = self._t.eval_size, self._d, self._local
    per_batch = self._t.opts['eval_scale'] is not None
    it = self._examples()
    for _ in range(self._len):
      xs, ys, names = [], [], []
      for image, mask, name in itertools.islice(it, local):
        x, y = self._t.eval(image, mask, name)
        xs.append(x)
        ys.append(y)
        names.append(name)
      real = len(xs)
      ch, cw = self._round_up([x.shape for x in xs]) if per_batch and xs else (e, e)
      canvas = self._label_canvas(ys, names) if ys else (e, e)
      labels = np.full((local, *canvas), IGNORE, np.int32)
      image = np.empty((local, ch, cw, 3), np.float32)
      image[...] = self._t.mean  # 0 once normalized, as mmseg pads
      for i, (x, y) in enumerate(zip(xs, ys)):
        labels[i, :y.shape[0], :y.shape[1]] = y
        image[i, :x.shape[0], :x.shape[1]] = x
      image = self._t.normalize(image)
      image_size = np.ones((local, 2), np.int32)
      label_size = np.ones((local, 2), np.int32)
      image_size[:real] = [x.shape[:2] for x in xs]
      label_size[:real] = [y.shape for y in ys]
      valid = np.arange(local) < real
      yield {'image': arrays.to_devices(image, d), 'label': arrays.to_devices(labels, d),
             'mask': arrays.to_devices(valid, d),
             'image_size': arrays.to_devices(image_size, d),
             'label_size': arrays.to_devices(label_size, d)}


def eval_image_shapes(cfg: ml_collections.ConfigDict) -> list[tuple[int, int, int]]:
  """The eval canvas `(E, E, 3)`, or with `eval_scale` two sample canvases (square, oblong)."""
  opts = seg_options(cfg)
  scale = opts['eval_scale']
  if scale is None:
    e = int(opts['eval_size'] or cfg.image_size)
    return [(e, e, 3)]
  short = _ceil_to(min(scale), EVAL_CANVAS_MULTIPLE)
  return [(short, short, 3), (short, short + EVAL_CANVAS_MULTIPLE, 3)]


def make_eval_iterator(cfg: ml_collections.ConfigDict, global_batch_size: int,
                       num_local_devices: int, process_index: int, process_count: int
                       ) -> Iterable[Batch]:
  opts = seg_options(cfg)
  transform = _Transform(cfg, opts, _num_classes(cfg, opts))
  return _EvalIterable(cfg, transform, global_batch_size // process_count, num_local_devices,
                       process_index, process_count)


# ---------------------------------------------------------------------------
# TFDS (scene_parse150): tf.data reads, shuffles and decodes; numpy augments.
# ---------------------------------------------------------------------------

# SceneParse150 id (1..150) of Instance100 category k = 1..100 (ade20k_instance_catid_mapping.txt).
INSTANCE100_TO_SCENEPARSE150 = (
    8, 9, 11, 13, 15, 16, 19, 20, 21, 23, 24, 25, 28, 31, 32, 33, 34, 36, 37, 38,
    39, 40, 42, 43, 44, 45, 46, 48, 50, 51, 54, 56, 57, 58, 59, 63, 65, 66, 67, 68,
    70, 71, 72, 73, 74, 75, 76, 77, 79, 81, 82, 83, 84, 86, 87, 88, 89, 90, 91, 93,
    94, 96, 98, 99, 103, 104, 105, 108, 109, 111, 112, 113, 116, 117, 119, 120, 121, 122, 124,
    125, 126, 127, 128, 130, 131, 133, 134, 135, 136, 137, 138, 139, 140, 143, 144, 145, 147,
    148, 149, 150)
_INSTANCE_TABLE = np.full(256, -1, np.int16)
_INSTANCE_TABLE[0] = 0
_INSTANCE_TABLE[1:101] = INSTANCE100_TO_SCENEPARSE150


def scene_parse150_labels(annotation: np.ndarray, name: str) -> np.ndarray:
  """SceneParse150 ids (uint8 [H, W], 0 = other, 1..150) of a TFDS scene_parse150 annotation.

  `annotation` is the decoded RGB PNG [H, W, 3] (or its R channel [H, W]): R
  is the Instance100 category (0 = none, 1..100), mapped by
  `INSTANCE100_TO_SCENEPARSE150`; the instance id in G is dropped (see the
  module docstring).

  Raises:
    ValueError: R holds a value above 100 (naming `name` and the values).
  """
  r = annotation[..., 0] if annotation.ndim == 3 else annotation
  labels = _INSTANCE_TABLE[r.astype(np.uint8)]
  if (labels < 0).any():
    bad = np.unique(r[labels < 0])[:5].tolist()
    raise ValueError(f'{name}: annotation red-channel values {bad} are not Instance100 '
                     'category ids (0..100); is this a TFDS scene_parse150 annotation?')
  return labels.astype(np.uint8)


def _tfds_dataset(cfg, split: str):
  from experiments.data import tfds_source  # pylint: disable=g-import-not-at-top
  tf, tfds = tfds_source._tf(), tfds_source._tfds()  # pylint: disable=protected-access
  b = tfds_source.builder(cfg)
  feats = b.info.features
  if 'image' not in feats or 'annotation' not in feats:
    raise ValueError(f'TFDS dataset {b.name!r} has features {list(feats)}; a segmentation '
                     "dataset needs 'image' and 'annotation'")
  ds = b.as_dataset(split=split, shuffle_files=False,
                    decoders={'image': tfds.decode.SkipDecoding(),
                              'annotation': tfds.decode.SkipDecoding()},
                    read_config=tfds.ReadConfig(shuffle_seed=0, try_autocache=False))
  options = tf.data.Options()
  options.deterministic = True
  return ds.with_options(options), tf


def _tfds_decode(tf):
  def decode(ex):
    image, ann = ex['image'], ex['annotation']
    if image.dtype == tf.string:
      image = tf.io.decode_image(image, channels=3, expand_animations=False)
    if ann.dtype == tf.string:
      ann = tf.io.decode_png(ann, channels=3)
    if len(ann.shape) == 3:
      ann = ann[..., 0]  # R: the Instance100 category (scene_parse150_labels maps it)
    return {'image': image, 'annotation': ann}
  return tf.autograph.experimental.do_not_convert(decode)


def _tfds_train(cfg, transform, global_batch_size, seed, start_step, num_local_devices,
                process_index, process_count) -> Iterator[Batch]:
  from experiments.data import tfds_source  # pylint: disable=g-import-not-at-top
  local = global_batch_size // process_count
  ds, tf = _tfds_dataset(cfg, tfds_source.process_split(cfg.train_split, process_index,
                                                        process_count))
  n = int(ds.cardinality())
  if n <= 0:
    raise ValueError(f'train split {cfg.train_split!r} of {cfg.name!r} is empty or of unknown '
                     f'size ({n})')
  buffer = min(cfg.shuffle_buffer, n)
  start = start_step * local
  first_epoch, skip = divmod(start, n)

  def epoch(e):
    return ds.shuffle(buffer, seed=tf.constant(seed % (1 << 31), tf.int64) * 1_000_003 + e,
                      reshuffle_each_iteration=False)

  stream = tf.data.Dataset.range(first_epoch, 1 << 62).flat_map(epoch).skip(skip)
  stream = stream.map(_tfds_decode(tf), num_parallel_calls=tf.data.AUTOTUNE).prefetch(local)

  def batches():
    it = stream.as_numpy_iterator()
    for step in itertools.count(start_step):
      xs, ys = [], []
      for j in range(local):
        ex = next(it)
        pos = step * global_batch_size + process_index * local + j
        rng = np.random.default_rng([seed & 0xFFFFFFFF, pos])
        name = f'{cfg.name} {cfg.train_split} example at stream position {pos}'
        x, y = transform.train(ex['image'], scene_parse150_labels(ex['annotation'], name), rng,
                               name)
        xs.append(x)
        ys.append(y)
      yield _batch(xs, ys, transform, num_local_devices)

  return batches()


def _tfds_eval_examples(cfg, process_index: int, process_count: int):
  from experiments.data import tfds_source  # pylint: disable=g-import-not-at-top
  split = tfds_source.process_split(cfg.eval_split, process_index, process_count)
  ds, tf = _tfds_dataset(cfg, split)
  ds = ds.map(_tfds_decode(tf), num_parallel_calls=tf.data.AUTOTUNE).prefetch(8)
  for i, ex in enumerate(ds.as_numpy_iterator()):
    name = f'{cfg.name} {split} example {i}'
    yield ex['image'], scene_parse150_labels(ex['annotation'], name), name
