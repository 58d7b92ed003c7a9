"""The valid values of every config key: one `Domain` per key, checked before anything runs.

Rules (docs/config.md, "Validation"): counts are positive integers; rates and
scales are finite; a learning rate is > 0; probabilities (dropout, label
smoothing) lie in [0, 1]; momentum, betas and averaging decays in [0, 1);
eps > 0; enum-like strings belong to their set. Model fields, optimizer
hyper-parameters and schedule keywords get their domain from their name
(`_BY_NAME`) or, failing that, from their type (int: a count, float: finite).
A model field's domain is the widest any registered model accepts (MLP depth
0 is a linear model, Swin num_classes 0 returns features); the model's own
`validate()` narrows it when the model is built, still before anything runs.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Optional


@dataclasses.dataclass(frozen=True)
class Domain:
  """A set of values: `kind` ('int', 'float', 'bool', 'str', 'ints', 'floats' (tuples),
  'size' (an int or a tuple of ints)) with bounds `lo`/`hi` on numbers (`lo_open`,
  `hi_open`: strict), `choices` for strings, and `optional` (None allowed)."""
  kind: str
  lo: Optional[float] = None
  hi: Optional[float] = None
  lo_open: bool = False
  hi_open: bool = False
  choices: Optional[tuple[Any, ...]] = None
  optional: bool = False
  allow_empty: bool = False  # tuples

  def _number_ok(self, x: Any) -> bool:
    if isinstance(x, bool) or not isinstance(x, (int, float)):
      return False
    if not math.isfinite(x):
      return False
    if self.lo is not None and (x <= self.lo if self.lo_open else x < self.lo):
      return False
    return not (self.hi is not None and (x >= self.hi if self.hi_open else x > self.hi))

  def contains(self, value: Any) -> bool:
    if value is None:
      return self.optional
    if self.kind == 'bool':
      return isinstance(value, bool)
    if self.kind == 'str':
      return isinstance(value, str) and (self.choices is None or value in self.choices)
    if self.kind == 'int':
      return isinstance(value, int) and self._number_ok(value) and (
          self.choices is None or value in self.choices)
    if self.kind == 'float':
      return self._number_ok(value)
    if self.kind in ('ints', 'floats', 'size'):
      if self.kind == 'size' and isinstance(value, int):
        return self._number_ok(value)
      if not isinstance(value, (tuple, list)) or not (value or self.allow_empty):
        return False
      whole = self.kind != 'floats'
      return all((isinstance(v, int) or not whole) and self._number_ok(v) for v in value)
    raise AssertionError(self.kind)

  @property
  def text(self) -> str:
    """What is valid, for the error line."""
    if self.kind == 'bool':
      body = 'True or False'
    elif self.kind == 'int' and self.choices is not None:
      body = 'one of ' + ', '.join(map(str, self.choices))
    elif self.kind == 'str':
      body = ('one of ' + ', '.join(self.choices)) if self.choices is not None else 'a string'
    else:
      some = 'a' if self.allow_empty else 'a non-empty'
      noun = {'int': 'an integer', 'float': 'a finite number',
              'ints': f'{some} tuple of integers',
              'floats': f'{some} tuple of finite numbers',
              'size': 'an integer or a tuple of integers'}[self.kind]
      bounds = []
      if self.lo is not None:
        bounds.append(f'{">" if self.lo_open else ">="} {self.lo:g}')
      if self.hi is not None:
        bounds.append(f'{"<" if self.hi_open else "<="} {self.hi:g}')
      body = noun + (f' {" and ".join(bounds)}' if bounds else '')
      if self.kind in ('ints', 'floats') and bounds:
        body = noun + f', each {" and ".join(bounds)}'
    return body + (' or None' if self.optional else '')

  def or_none(self) -> 'Domain':
    return dataclasses.replace(self, optional=True)


def one_of(*choices: str) -> Domain:
  return Domain('str', choices=tuple(choices))


BOOL = Domain('bool')
STR = Domain('str')
INT = Domain('int')
COUNT = Domain('int', lo=1)
NON_NEGATIVE_INT = Domain('int', lo=0)
FINITE = Domain('float')
POSITIVE = Domain('float', lo=0, lo_open=True)
NON_NEGATIVE = Domain('float', lo=0)
PROBABILITY = Domain('float', lo=0, hi=1)
DECAY = Domain('float', lo=0, hi=1, hi_open=True)  # momentum, betas, averaging decays
COUNTS = Domain('ints', lo=1)
NON_NEGATIVE_INTS = Domain('ints', lo=0)
POSITIVE_FLOATS = Domain('floats', lo=0, lo_open=True)
SIZE = Domain('size', lo=1)

# Model fields, optimizer hyper-parameters and schedule keywords by name.
_BY_NAME: dict[str, Domain] = {
    # probabilities
    'drop_rate': PROBABILITY, 'drop_path_rate': PROBABILITY, 'decoder_drop_rate': PROBABILITY,
    # momentum, betas, decays of running averages
    'momentum': DECAY, 'b1': DECAY, 'b2': DECAY, 'decay': DECAY, 'rho': DECAY,
    # eps and other strictly positive scales
    'eps': POSITIVE, 'norm_eps': POSITIVE, 'embed_norm_eps': POSITIVE,
    'curvature_eps': POSITIVE.or_none(), 'mlp_ratio': POSITIVE, 'mlp_ratios': POSITIVE_FLOATS,
    'rate': POSITIVE.or_none(), 'power': POSITIVE, 'factor': POSITIVE,
    'learning_rate': POSITIVE, 'layer_decay': Domain('float', lo=0, lo_open=True, hi=1).or_none(),
    # non-negative amounts
    'weight_decay': NON_NEGATIVE, 'initial_accumulator_value': NON_NEGATIVE,
    'momentum_decay': NON_NEGATIVE, 'damping': NON_NEGATIVE, 'end_value': NON_NEGATIVE,
    'padding': NON_NEGATIVE_INT, 'depth': NON_NEGATIVE_INT, 'num_classes': NON_NEGATIVE_INT,
    'fc_widths': dataclasses.replace(COUNTS, allow_empty=True), 'boundaries': Domain('floats', lo=0).or_none(),
    'hybrid_depths': NON_NEGATIVE_INTS.or_none(),
    'warmup_steps': NON_NEGATIVE_INT.or_none(), 'warmup_epochs': NON_NEGATIVE.or_none(),
    'base_batch_size': COUNT.or_none(),
    # sizes
    'img_size': SIZE,
    # names
    'amsgrad_max': one_of('raw', 'corrected'),
    'axis_name': STR.or_none(),
}

_BY_TYPE: dict[type, Domain] = {int: COUNT, float: FINITE, bool: BOOL, str: STR,
                                tuple: COUNTS}


def knob_domain(name: str, knob_type: type, default: Any = None, by_type: bool = True
                ) -> Optional[Domain]:
  """The domain of a model field / optimizer or schedule keyword, by name, else (when
  `by_type`) by type; None: not checked here (e.g. optimizer.lr_mult, which the trainer
  matches against the parameters)."""
  if name in _BY_NAME:
    domain = _BY_NAME[name]
  elif not by_type:
    return None
  elif knob_type is tuple and isinstance(default, tuple) and any(
      isinstance(v, float) for v in default):
    domain = POSITIVE_FLOATS
  elif knob_type in _BY_TYPE:
    domain = _BY_TYPE[knob_type]
  else:
    return None
  return domain.or_none() if default is None and not domain.optional else domain


def linesearch_domain() -> Domain:
  from optim.second_order import linesearch  # pylint: disable=g-import-not-at-top
  return one_of(*linesearch.LINESEARCHES)


def _tasks() -> tuple[str, ...]:
  from experiments import tasks  # pylint: disable=g-import-not-at-top
  return tuple(sorted(tasks.TASKS))


def _losses() -> tuple[str, ...]:
  from experiments import losses  # pylint: disable=g-import-not-at-top
  return tuple(losses.LOSSES)


def _augmentations() -> tuple[str, ...]:
  from experiments.data import config as data_config  # pylint: disable=g-import-not-at-top
  from experiments.data import seg_pipeline  # pylint: disable=g-import-not-at-top
  return tuple(dict.fromkeys((*data_config.AUGMENTATIONS, *seg_pipeline.AUGMENTATIONS)))


def _parallelisms() -> tuple[str, ...]:
  from experiments.trainer import sharding  # pylint: disable=g-import-not-at-top
  return sharding.MODES


# Compute dtypes by their jnp names (parameters and optimizer state stay float32).
DTYPES = ('float32', 'bfloat16')

# The fixed sections: dotted key -> domain (a callable builds it when it needs an import).
FIXED: dict[str, Domain | Callable[[], Domain]] = {
    'seed': NON_NEGATIVE_INT,
    'task': lambda: one_of(*_tasks()),
    'batch_size': COUNT,
    'eval_batch_size': COUNT.or_none(),
    'total_steps': NON_NEGATIVE_INT.or_none(),
    'total_epochs': NON_NEGATIVE.or_none(),
    'grad_clip_norm': POSITIVE.or_none(),
    'loss': lambda: one_of(*_losses()),
    'label_smoothing': PROBABILITY,
    'reg.kind': one_of('none', 'l2', 'l1', 'elastic_net'),
    'reg.strength': NON_NEGATIVE,
    'reg.mask': one_of('kernels', 'weights', 'all'),
    'reg.beta': NON_NEGATIVE,
    'dtype': one_of(*DTYPES),
    'accum_steps': COUNT,
    'full_batch': BOOL,
    'sync_batch_norm': BOOL,
    'log_every': NON_NEGATIVE_INT,
    'eval_every': NON_NEGATIVE_INT,
    'checkpoint_every': NON_NEGATIVE_INT,
    'keep_checkpoints': COUNT,
    'async_checkpoints': BOOL,
    'prefetch': NON_NEGATIVE_INT.or_none(),
    'distributed': BOOL,
    'parallelism': lambda: one_of(*_parallelisms()),
    'data.name': STR,
    'data.image_size': COUNT,
    'data.channels': Domain('int', lo=1, hi=3, choices=(1, 3)).or_none(),
    'data.train_split': STR,
    'data.eval_split': STR,
    'data.augment': lambda: one_of(*_augmentations()),
    'data.mean': Domain('floats').or_none(),
    'data.std': POSITIVE_FLOATS.or_none(),
    'data.shuffle_buffer': COUNT,
    'data.data_dir': STR.or_none(),
    'data.cache': BOOL,
    'data.seg.num_classes': COUNT.or_none(),
    'data.seg.reduce_zero_label': BOOL,
    'data.seg.scale': COUNTS.or_none(),
    'data.seg.ratio_range': POSITIVE_FLOATS,
    'data.seg.cat_max_ratio': Domain('float', lo=0, lo_open=True, hi=1),
    'data.seg.flip': BOOL,
    'data.seg.photometric': BOOL,
    'data.seg.pad': BOOL,
    'data.seg.eval_size': COUNT.or_none(),
    'data.seg.eval_scale': COUNTS.or_none(),
    'data.seg.eval_label_size': COUNT.or_none(),
    'optimizer.learning_rate': POSITIVE,
    'schedule.warmup_steps': NON_NEGATIVE_INT.or_none(),
    'schedule.warmup_epochs': NON_NEGATIVE.or_none(),
}


def fixed_domain(path: str) -> Optional[Domain]:
  domain = FIXED.get(path)
  return domain() if callable(domain) else domain


def check(path: str, value: Any, domain: Domain) -> None:
  """ValueError `path=value; valid: ...` when `value` is outside `domain`."""
  if not domain.contains(value):
    raise ValueError(f'{path}={value!r}; valid: {domain.text}')

