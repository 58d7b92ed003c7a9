"""What `--config.*` can set: every knob of the configured model, optimizer and schedule.

A config file lists only the keys its experiment changes. `complete(config)`
adds, as unset typed placeholders (value None), every other constructor
field of `model.name` under `model.overrides`, every hyper-parameter of the
`optim.create` factory `optimizer.name` under `optimizer`, and every keyword
of the schedule `schedule.name` under `schedule`, so the command line and
sweeps reach all of them with type checking. `settle(config)` drops the
placeholders still unset (the model, optimizer and schedule then use their
own defaults): that is the config a run trains and writes to config.json, so
a config file that lists a key and one that leaves it unset at its default
train the same model, and a resumed run compares equal to the saved one.

Keys with a meaning of their own (not passed to the factory as they are):
  model.overrides.dtype, .bn_axis_name   set from the top-level `dtype` and
                                         `sync_batch_norm`.
  optimizer.learning_rate                the schedule's peak (None: the optimizer
                                         takes no rate, e.g. a line search).
  optimizer.lr_mult, no_decay, freeze, layer_decay   optimizer policy, read by
                                         the trainer (RESERVED_OPTIMIZER_KEYS).
  optimizer.base_batch_size              the linear scaling rule (Goyal et al.
                                         2017): the trained peak rate is
                                         learning_rate × batch_size / base_batch_size
                                         (`scale_learning_rate`, applied before build).
"""
from __future__ import annotations

import collections.abc
import copy
import dataclasses
import inspect
import types
import typing
from typing import Any, Callable, Optional, Union

import ml_collections

# Model fields that the trainer derives from a top-level key.
DERIVED_MODEL_FIELDS = {'dtype': 'dtype', 'bn_axis_name': 'sync_batch_norm'}
# Model fields the trainer fills from the data when they are unset.
DATA_FILLED_FIELDS = ('num_classes', 'in_chans', 'img_size')
# Optimizer keys the trainer reads itself (optimizer policy), with their placeholder types:
# lr_mult {pattern: m}, no_decay / freeze (path patterns), layer_decay (per-layer factor).
RESERVED_OPTIMIZER_KEYS = {'lr_mult': object, 'no_decay': tuple, 'freeze': tuple,
                           'layer_decay': float}
# Optimizer keys handled in config space before build (not optimizer hyper-parameters).
CONFIG_OPTIMIZER_KEYS = {'base_batch_size': int}
# Factory arguments that are not knobs: the schedule drives learning_rate; a weight-decay
# mask is a function of the parameters, given as optimizer.no_decay patterns.
_NOT_KNOBS = {'learning_rate': 'optimizer.learning_rate', 'mask': 'optimizer.no_decay'}
SCHEDULE_COMMON_KEYS = ('name', 'warmup_steps', 'warmup_epochs')
# Arguments of a schedule function that `optim.schedules.create` fills itself.
_SCHEDULE_FILLED = ('init_value', 'value', 'decay_steps')


@dataclasses.dataclass(frozen=True)
class Knob:
  """One settable key: its placeholder type (int, float, bool, str, tuple or object for
  'a literal', e.g. an int or a pair) and its default (None: computed or unset)."""
  name: str
  type: type
  default: Any = None


def _strip_optional(hint: Any) -> Any:
  if typing.get_origin(hint) in (Union, types.UnionType):
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return args[0] if len(args) == 1 else hint
  return hint


def knob_type(hint: Any, default: Any) -> Optional[type]:
  """The placeholder type of an annotated argument, or None when it is not a knob
  (a callable or an object that a command line cannot spell)."""
  hint = _strip_optional(hint)
  if hint in (int, float, bool, str):
    return hint
  origin = typing.get_origin(hint)
  if hint in (tuple, list) or origin in (tuple, list, collections.abc.Sequence):
    return tuple
  if origin in (Union, types.UnionType):  # e.g. int | Sequence[int] (img_size)
    return object
  if hint is Any or hint is object:
    if isinstance(default, str):
      return str
    if default is None or isinstance(default, (int, float, tuple)):
      return object
    return None
  if isinstance(hint, type):
    import flax.linen as nn  # pylint: disable=g-import-not-at-top
    if issubclass(hint, nn.Module):
      return str  # a registered model name (segmentation backbones)
  return None


def model_knobs(name: str) -> dict[str, Knob]:
  """Constructor fields of the registered model `name` (defaults: the registered ones),
  without the fields the trainer derives (DERIVED_MODEL_FIELDS)."""
  import vision  # pylint: disable=g-import-not-at-top
  entry = vision.get_model_def(name)
  hints = typing.get_type_hints(entry.cls)
  out = {}
  for f in dataclasses.fields(entry.cls):
    if not f.init or f.name in ('parent', 'name') or f.name in DERIVED_MODEL_FIELDS:
      continue
    if f.name in entry.kwargs:
      default = entry.kwargs[f.name]
    elif f.default is not dataclasses.MISSING:
      default = f.default
    elif f.default_factory is not dataclasses.MISSING:
      default = f.default_factory()
    else:
      default = None
    t = knob_type(hints.get(f.name, Any), default)
    if t is not None:
      out[f.name] = Knob(f.name, t, default)
  return out


def model_fields(name: str) -> list[str]:
  """Every constructor field `model.overrides` may name (derived ones included)."""
  import vision  # pylint: disable=g-import-not-at-top
  return sorted(f.name for f in dataclasses.fields(vision.get_model_def(name).cls)
                if f.init and f.name not in ('parent', 'name'))


def _signature_knobs(fn: Callable[..., Any], skip: Any) -> dict[str, Knob]:
  hints = typing.get_type_hints(fn)
  out = {}
  for p in inspect.signature(fn).parameters.values():
    if p.name in skip or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
      continue
    default = None if p.default is p.empty else p.default
    t = knob_type(hints.get(p.name, Any), default)
    if t is not None:
      out[p.name] = Knob(p.name, t, default)
  return out


def optimizer_names() -> list[str]:
  import optim  # pylint: disable=g-import-not-at-top
  return sorted(optim.registry.optimizers())


def optimizer_knobs(name: str) -> dict[str, Knob]:
  """Hyper-parameters of the `optim.create` factory `name` (learning_rate and mask aside),
  then the reserved policy keys and base_batch_size."""
  import optim  # pylint: disable=g-import-not-at-top
  table = optim.registry.optimizers()
  if name not in table:
    raise ValueError(f'optimizer.name={name!r}; valid: {", ".join(sorted(table))}')
  out = _signature_knobs(table[name], _NOT_KNOBS)
  for key, t in {**RESERVED_OPTIMIZER_KEYS, **CONFIG_OPTIMIZER_KEYS}.items():
    out[key] = Knob(key, t)
  return out


def optimizer_takes_no_rate(name: str) -> bool:
  """True when the factory picks its own step: its learning_rate defaults to None, or it
  takes none (Gauss-Newton, Levenberg-Marquardt)."""
  import optim  # pylint: disable=g-import-not-at-top
  p = inspect.signature(optim.registry.optimizers()[name]).parameters.get('learning_rate')
  return p is None or p.default is None


def _schedule_functions() -> dict[str, tuple[Callable[..., Any], ...]]:
  """Each `optim.schedules.create` name -> the functions whose keywords it passes on."""
  from optim import schedules  # pylint: disable=g-import-not-at-top
  return {'constant': (), 'step': (schedules.step_decay,),
          'exponential': (schedules.exponential_decay,),
          'inverse_time': (schedules.inverse_time_decay,),
          'cosine': (schedules.cosine_decay,), 'linear': (schedules.linear_decay,),
          'inverse_sqrt': (), 'poly': (schedules.poly_decay,),
          'warmup_cosine': (schedules.cosine_decay,),
          'warmup_linear': (schedules.linear_decay,)}


def schedule_names() -> list[str]:
  from optim import schedules  # pylint: disable=g-import-not-at-top
  return list(schedules.NAMES)


def schedule_knobs(name: str) -> dict[str, Knob]:
  """Keywords of the schedule `name` (default None: computed from the run length), then
  warmup_steps / warmup_epochs."""
  functions = _schedule_functions()
  if name not in functions or name not in schedule_names():
    raise ValueError(f'schedule.name={name!r}; valid: {", ".join(schedule_names())}')
  out = {}
  for fn in functions[name]:
    out.update(_signature_knobs(fn, _SCHEDULE_FILLED))
  out['warmup_steps'] = Knob('warmup_steps', int)
  out['warmup_epochs'] = Knob('warmup_epochs', float)
  return out


def leaves(node: ml_collections.ConfigDict, prefix: str = ''):
  """(dotted key, value) of every leaf of a ConfigDict, depth first."""
  for key, value in node.items():
    path = f'{prefix}.{key}' if prefix else key
    if isinstance(value, ml_collections.ConfigDict):
      yield from leaves(value, path)
    else:
      yield path, value


def knob_defaults(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """{dotted key: default} of the knobs of config's model, optimizer and schedule."""
  out = {}
  for section, knobs in (('model.overrides', model_knobs(config.model.name)),
                         ('optimizer', optimizer_knobs(config.optimizer.name)),
                         ('schedule', schedule_knobs(config.schedule.name))):
    out.update({f'{section}.{k}': knob.default for k, knob in knobs.items()})
  return out


def describe(config: ml_collections.ConfigDict) -> str:
  """Every key of a completed config, one per line: `key = value`, or for a knob left
  unset, `key  (unset: default)`, the default of the model, optimizer or schedule."""
  defaults = knob_defaults(config)
  lines = []
  for path, value in leaves(config):
    if value is None and path in defaults:
      if path.rsplit('.', 1)[-1] in DATA_FILLED_FIELDS and path.startswith('model.'):
        shown = 'unset: from the data'
      else:
        shown = 'unset' if defaults[path] is None else f'unset: {defaults[path]!r}'
      lines.append(f'  {path}  ({shown})')
    else:
      lines.append(f'  {path} = {value!r}')
  return '\n'.join(lines)


def placeholder(knob: Knob) -> ml_collections.FieldReference:
  return ml_collections.FieldReference(None, field_type=knob.type)


def _fill(section: ml_collections.ConfigDict, knobs: dict[str, Knob]) -> None:
  for key, knob in knobs.items():
    if key not in section:
      section[key] = placeholder(knob)
    elif knob.type is float and isinstance(section[key], int) and not isinstance(
        section[key], bool):
      with section.ignore_type():  # 2 -> 2.0, so that --config.<key>=2.5 parses
        section[key] = float(section[key])


def complete(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """A copy of `config` with a placeholder for every knob of its model, optimizer and schedule.

  Raises:
    ValueError: model.name, optimizer.name or schedule.name is not registered.
  """
  out = copy.deepcopy(config)
  out.unlock()
  if isinstance(out.get('model'), ml_collections.ConfigDict) and out.model.get('name'):
    if not isinstance(out.model.get('overrides'), ml_collections.ConfigDict):
      out.model.overrides = ml_collections.ConfigDict()
    _fill(out.model.overrides, model_knobs(out.model.name))
  if isinstance(out.get('optimizer'), ml_collections.ConfigDict) and out.optimizer.get('name'):
    _fill(out.optimizer, optimizer_knobs(out.optimizer.name))
  if isinstance(out.get('schedule'), ml_collections.ConfigDict) and out.schedule.get('name'):
    _fill(out.schedule, schedule_knobs(out.schedule.name))
  return out


def drop_foreign_keys(config: ml_collections.ConfigDict, section: str) -> list[str]:
  """Deletes the keys of `section` ('model', 'optimizer' or 'schedule') that its named
  model / optimizer / schedule does not take; returns their dotted names."""
  if section == 'model':
    node, valid = config.model.get('overrides'), model_fields(config.model.name)
    prefix = 'model.overrides'
  elif section == 'optimizer':
    node, prefix = config.optimizer, 'optimizer'
    valid = ['name', 'learning_rate', *optimizer_knobs(config.optimizer.name)]
  else:
    node, prefix = config.schedule, 'schedule'
    valid = [*SCHEDULE_COMMON_KEYS, *schedule_knobs(config.schedule.name)]
  if not isinstance(node, ml_collections.ConfigDict):
    return []
  foreign = [k for k in node.keys() if k not in valid]
  for key in foreign:
    del node[key]
  return [f'{prefix}.{k}' for k in foreign]


def _drop_unset(section: Any, keep: tuple[str, ...] = ()) -> None:
  if isinstance(section, ml_collections.ConfigDict):
    for key in [k for k, v in section.items() if v is None and k not in keep]:
      del section[key]


def settle(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """`config` without the placeholders still unset: what a run trains and saves.

  Unset (None) keys of model.overrides, optimizer and schedule mean "the
  factory's default", so they are dropped; optimizer.learning_rate (None: no
  rate) and the schedule's warmup keys stay, as the trainer reads them.
  """
  out = ml_collections.ConfigDict(config.to_dict())
  if isinstance(out.get('model'), ml_collections.ConfigDict):
    _drop_unset(out.model.get('overrides'))
  _drop_unset(out.get('optimizer'), keep=('name', 'learning_rate'))
  _drop_unset(out.get('schedule'), keep=SCHEDULE_COMMON_KEYS)
  return out


def scale_learning_rate(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The config to build: optimizer.base_batch_size B turned into the peak rate it means.

  Linear scaling rule (Goyal et al. 2017, `optim.schedules.scale_by_batch_size`):
  lr_trained = learning_rate × batch_size / B, with batch_size the global batch.
  Without base_batch_size the config is returned unchanged.
  """
  base = config.get('optimizer', {}).get('base_batch_size')
  if base is None:
    return config
  from optim import schedules  # pylint: disable=g-import-not-at-top
  if config.get('full_batch'):
    raise ValueError(f'optimizer.base_batch_size={base!r} with full_batch=True: the batch is '
                     'the whole training set; give optimizer.learning_rate directly')
  if config.optimizer.get('learning_rate') is None:
    raise ValueError(f'optimizer.base_batch_size={base!r} with optimizer.learning_rate=None: '
                     'there is no rate to scale')
  out = copy.deepcopy(config)
  out.unlock()
  out.optimizer.learning_rate = float(schedules.scale_by_batch_size(
      config.optimizer.learning_rate, config.batch_size, base))
  del out.optimizer['base_batch_size']
  return out
