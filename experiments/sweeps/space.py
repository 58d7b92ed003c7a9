"""Search spaces: the `sweep.parameters` section of a config, validated.

A sweep config is an ordinary experiment config with a `sweep` section:

    config.sweep.method = 'random'            # random | grid | coarse_to_fine
    config.sweep.num_trials = 20
    config.sweep.metric = 'val/accuracy'      # a key of metrics.jsonl
    config.sweep.direction = 'maximize'
    config.sweep.parameters = dict(
        lr=space.log_uniform('optimizer.learning_rate', 1e-4, 1e-1),
        reg=space.log_uniform('reg.strength', 1e-5, 1e0),
    )

Each parameter names its config path and a distribution:

- `log_uniform(low, high)`: log x ~ U(log low, log high), 0 < low < high
  (the course's advice for learning rates and regularization strengths:
  sample the exponent, `lr = 10 ** uniform(-6, -3)`).
- `uniform(low, high)`: x ~ U(low, high), low < high.
- `int(low, high, log=False)`: an integer in [low, high] (log-uniform when
  `log`).
- `choice(values)`: one of a list of values.
- `preset(values)`: one of several named bundles of overrides
  ({name: {path: value, ...}}), e.g. the variants of an ablation.

The parameter's key (`lr`, `reg`) is the label in the live line and in plots.
Every path must exist in the config; a range that is empty, inverted or (for
log parameters) touches 0 is rejected before any trial starts.
"""
from __future__ import annotations

import dataclasses
import importlib.util
import math
import os
from typing import Any, Mapping, Optional, Sequence

import ml_collections
import numpy as np

DISTRIBUTIONS = ('log_uniform', 'uniform', 'int', 'choice', 'preset')


# --- constructors used by config files ---------------------------------------

def log_uniform(path: str, low: float, high: float) -> dict[str, Any]:
  """A parameter at `path` whose logarithm is uniform in [log low, log high]."""
  return dict(path=path, distribution='log_uniform', low=low, high=high)


def uniform(path: str, low: float, high: float) -> dict[str, Any]:
  """A parameter at `path` uniform in [low, high]."""
  return dict(path=path, distribution='uniform', low=low, high=high)


def integer(path: str, low: int, high: int, log: bool = False) -> dict[str, Any]:
  """An integer parameter at `path` in [low, high] (log-uniform if `log`)."""
  return dict(path=path, distribution='int', low=low, high=high, log=log)


def choice(path: str, values: Sequence[Any]) -> dict[str, Any]:
  """A categorical parameter at `path` taking one of `values`."""
  return dict(path=path, distribution='choice', values=list(values))


def preset(values: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
  """A categorical parameter over named bundles {name: {path: value}}."""
  return dict(path='', distribution='preset',
              values=[[name, dict(bundle)] for name, bundle in values.items()])


# --- the parsed form ----------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Param:
  """One swept parameter.

  Attributes:
    name: its key in `sweep.parameters`, used as the label.
    path: the dotted config path it overrides ('' for presets).
    distribution: one of DISTRIBUTIONS.
    low, high: the range (numeric distributions).
    log: whether the range is searched in log space.
    values: the choices (`choice`), or the preset names (`preset`).
    bundles: for presets, name -> {path: value}.
  """
  name: str
  path: str
  distribution: str
  low: Optional[float] = None
  high: Optional[float] = None
  log: bool = False
  values: tuple[Any, ...] = ()
  bundles: tuple[tuple[str, tuple[tuple[str, Any], ...]], ...] = ()

  @property
  def numeric(self) -> bool:
    return self.distribution in ('log_uniform', 'uniform', 'int')

  def optuna_distribution(self) -> Any:
    """The equivalent Optuna distribution."""
    import optuna  # pylint: disable=g-import-not-at-top  (trial configs stay light)
    if self.distribution in ('log_uniform', 'uniform'):
      return optuna.distributions.FloatDistribution(self.low, self.high, log=self.log)
    if self.distribution == 'int':
      return optuna.distributions.IntDistribution(int(self.low), int(self.high), log=self.log)
    return optuna.distributions.CategoricalDistribution(list(self.values))

  def overrides(self, value: Any) -> dict[str, Any]:
    """The config overrides {path: value} this parameter's `value` stands for."""
    if self.distribution == 'preset':
      return dict(dict(self.bundles)[value])
    return {self.path: value}

  def to_unit(self, value: float) -> float:
    """Maps a numeric value into the search space (log10 for log params)."""
    return math.log10(value) if self.log else float(value)

  def from_unit(self, u: float) -> float:
    return 10.0 ** u if self.log else u


def _fail(message: str) -> None:
  raise ValueError(message)


def flatten(tree: Any, prefix: str = '') -> dict[str, Any]:
  """Nested mappings -> {dotted.path: leaf}; dotted keys are kept as paths."""
  if isinstance(tree, ml_collections.ConfigDict):
    tree = tree.to_dict()
  if not isinstance(tree, Mapping):
    return {prefix: tree} if prefix else {}
  out = {}
  for key, value in tree.items():
    path = f'{prefix}.{key}' if prefix else str(key)
    if isinstance(value, (Mapping, ml_collections.ConfigDict)) and value:
      out.update(flatten(value, path))
    else:
      out[path] = value
  return out


def get_path(config: ml_collections.ConfigDict, path: str) -> Any:
  """The value at dotted `path`; KeyError naming the first missing part."""
  node: Any = config
  for i, part in enumerate(path.split('.')):
    if not isinstance(node, (ml_collections.ConfigDict, Mapping)) or part not in node:
      raise KeyError('.'.join(path.split('.')[:i + 1]))
    node = node[part]
  return node


def set_path(config: ml_collections.ConfigDict, path: str, value: Any) -> None:
  """Sets the existing field at dotted `path` (unlocked configs may gain leaves
  under an existing mapping such as `model.overrides`)."""
  parts = path.split('.')
  parent = get_path(config, '.'.join(parts[:-1])) if len(parts) > 1 else config
  if isinstance(parent, ml_collections.ConfigDict):
    if parts[-1] in parent:
      current = parent[parts[-1]]
      if isinstance(current, float) and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    with parent.ignore_type():
      parent[parts[-1]] = value
  elif isinstance(parent, dict):
    parent[parts[-1]] = value
  else:
    raise KeyError(path)


def _check_model_override(config: ml_collections.ConfigDict, path: str, where: str) -> None:
  """`model.overrides.<key>` must name a field of the configured model."""
  parts = path.split('.')
  if len(parts) != 3 or parts[:2] != ['model', 'overrides']:
    return
  name = config.get('model', {}).get('name') if isinstance(config.get('model'), (
      ml_collections.ConfigDict, Mapping)) else None
  if not isinstance(name, str):
    return
  import vision  # pylint: disable=g-import-not-at-top  (only when sweeping model overrides)
  try:
    cls = vision.get_model_def(name).cls
  except ValueError:
    return  # the trainer reports an unknown model name itself
  fields = sorted(f.name for f in dataclasses.fields(cls)
                  if f.init and f.name not in ('parent', 'name'))
  if parts[2] not in fields:
    _fail(f'{where}: unknown config path {path!r}: model {name!r} has no field '
          f'{parts[2]!r}; valid overrides: {", ".join(fields)}')


def _check_path(config: ml_collections.ConfigDict, path: str, where: str) -> Any:
  _check_model_override(config, path, where)
  try:
    return get_path(config, path)
  except KeyError as e:
    # New keys are allowed directly under an existing `*.overrides` mapping
    # (model overrides are free-form keyword arguments of the model).
    parent = path.rsplit('.', 1)[0] if '.' in path else ''
    if parent.endswith('overrides'):
      try:
        get_path(config, parent)
        return None
      except KeyError:
        pass
    _fail(f'{where}: unknown config path {path!r} (no field {e.args[0]!r} in the '
          f'config); valid top-level fields: {", ".join(sorted(config.keys()))}')


def parse_param(name: str, spec: Any, config: ml_collections.ConfigDict) -> Param:
  """Validates one `sweep.parameters.<name>` entry against `config`."""
  where = f'sweep.parameters.{name}'
  if isinstance(spec, ml_collections.ConfigDict):
    spec = spec.to_dict()
  if not isinstance(spec, Mapping):
    _fail(f'{where}={spec!r}: expected a dict with path and distribution '
          f'(one of {", ".join(DISTRIBUTIONS)})')
  dist = spec.get('distribution')
  if dist not in DISTRIBUTIONS:
    _fail(f'{where}.distribution={dist!r}; valid: {", ".join(DISTRIBUTIONS)}')
  path = spec.get('path', '')
  if dist == 'preset':
    raw = spec.get('values') or []
    bundles = []
    for item in raw:
      if isinstance(item, Mapping):
        item = list(item.items())[0] if len(item) == 1 else None
      if item is None or len(item) != 2:
        _fail(f'{where}.values: expected [name, {{path: value}}] pairs, got {raw!r}')
      label, bundle = item
      flat = flatten(bundle)
      for p in flat:
        _check_path(config, p, f'{where}.values[{label!r}]')
      bundles.append((str(label), tuple(sorted(flat.items()))))
    if not bundles:
      _fail(f'{where}.values is empty; expected at least one named preset')
    return Param(name, '', dist, values=tuple(b[0] for b in bundles), bundles=tuple(bundles))
  if not isinstance(path, str) or not path:
    _fail(f'{where}.path={path!r}: expected a dotted config path such as '
          "'optimizer.learning_rate'")
  current = _check_path(config, path, where)
  if dist == 'choice':
    values = spec.get('values')
    if not isinstance(values, (list, tuple)) or not values:
      _fail(f'{where}.values={values!r}: expected a non-empty list of choices')
    return Param(name, path, dist, values=tuple(values))
  low, high = spec.get('low'), spec.get('high')
  for key, v in (('low', low), ('high', high)):
    if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
      _fail(f'{where}.{key}={v!r}: expected a finite number')
  log = dist == 'log_uniform' or bool(spec.get('log', False))
  if not low < high:
    _fail(f'{where}: range [{low!r}, {high!r}] is empty or inverted; need low < high')
  if log and low <= 0:
    _fail(f'{where}: log range [{low!r}, {high!r}] includes values <= 0; '
          'log-distributed parameters need 0 < low < high')
  if dist == 'int':
    if int(low) != low or int(high) != high:
      _fail(f'{where}: int range [{low!r}, {high!r}] must have integer bounds')
    low, high = int(low), int(high)
  elif isinstance(current, int) and not isinstance(current, bool):
    _fail(f'{where}: {path!r} holds an int ({current!r}); use the int distribution')
  return Param(name, path, dist, low=low, high=high, log=log)


def parse_space(parameters: Any, config: ml_collections.ConfigDict) -> list[Param]:
  """All parameters of a `sweep.parameters` section, validated, in key order."""
  if isinstance(parameters, ml_collections.ConfigDict):
    parameters = parameters.to_dict()
  if not isinstance(parameters, Mapping) or not parameters:
    _fail(f'sweep.parameters={parameters!r}: expected a non-empty dict '
          '{label: space.log_uniform(path, low, high), ...}')
  return [parse_param(name, spec, config) for name, spec in parameters.items()]


# --- sampling -------------------------------------------------------------------

def sample(params: Sequence[Param], rng: np.random.Generator) -> dict[str, Any]:
  """One independent draw of every parameter."""
  out = {}
  for p in params:
    if p.distribution == 'int':
      if p.log:
        u = rng.uniform(math.log(p.low), math.log(p.high + 1))
        out[p.name] = int(min(p.high, math.floor(math.exp(u))))
      else:
        out[p.name] = int(rng.integers(p.low, p.high + 1))
    elif p.numeric:
      u = rng.uniform(p.to_unit(p.low), p.to_unit(p.high))
      out[p.name] = float(min(max(p.from_unit(u), p.low), p.high))
    else:
      out[p.name] = p.values[int(rng.integers(len(p.values)))]
  return out


def grid(params: Sequence[Param], points: int) -> list[dict[str, Any]]:
  """The Cartesian product: choices as given, numeric ranges at `points`
  evenly spaced values (in log space for log parameters)."""
  axes = []
  for p in params:
    if p.numeric:
      us = np.linspace(p.to_unit(p.low), p.to_unit(p.high), points)
      vals = [p.from_unit(float(u)) for u in us]
      if p.distribution == 'int':
        vals = sorted({int(round(v)) for v in vals})
      else:
        vals[0], vals[-1] = float(p.low), float(p.high)
      axes.append(vals)
    else:
      axes.append(list(p.values))
  combos: list[dict[str, Any]] = [{}]
  for p, vals in zip(params, axes):
    combos = [{**c, p.name: v} for c in combos for v in vals]
  return combos


def narrow(param: Param, best_values: Sequence[Any], margin: float) -> Param:
  """The coarse-to-fine step: the range spanned by the best trials' values,
  widened by `margin` × the old width on each side (in log space for log
  parameters), clipped to the old range. Categorical parameters keep the
  choices the best trials used."""
  if not best_values:
    return param
  if not param.numeric:
    keep = tuple(v for v in param.values if v in set(best_values))
    if param.distribution == 'preset':
      bundles = tuple(b for b in param.bundles if b[0] in keep)
      return dataclasses.replace(param, values=keep, bundles=bundles)
    return dataclasses.replace(param, values=keep)
  lo_u, hi_u = param.to_unit(param.low), param.to_unit(param.high)
  us = [param.to_unit(v) for v in best_values]
  width = hi_u - lo_u
  new_lo = max(lo_u, min(us) - margin * width)
  new_hi = min(hi_u, max(us) + margin * width)
  low, high = param.from_unit(new_lo), param.from_unit(new_hi)
  low, high = max(low, param.low), min(high, param.high)
  if param.distribution == 'int':
    low, high = int(math.floor(low)), int(math.ceil(high))
    if low == high:
      low, high = max(int(param.low), low - 1), min(int(param.high), high + 1)
  return dataclasses.replace(param, low=low, high=high)


def overrides_for(params: Sequence[Param], values: Mapping[str, Any]) -> dict[str, Any]:
  """{config path: value} for one trial's parameter values."""
  out = {}
  for p in params:
    out.update(p.overrides(values[p.name]))
  return out


# --- configs --------------------------------------------------------------------

def load_config(path: str, arg: Optional[str] = None) -> ml_collections.ConfigDict:
  """Calls `get_config(arg)` of the config file at `path` (big_vision style)."""
  if not os.path.exists(path):
    raise ValueError(f'--config={path!r}: no such config file')
  spec = importlib.util.spec_from_file_location(
      '_sweep_config_' + os.path.basename(path).replace('.', '_'), path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg) if arg else module.get_config()


def trial_config(base: str, arg: Optional[str],
                 overrides: Mapping[str, Any]) -> ml_collections.ConfigDict:
  """The config one trial trains: `base` without its sweep section, with
  `overrides` ({path: value}: the sweep's command-line overrides, the stage's
  budget, then the trial's parameters) applied in order."""
  config = load_config(base, arg)
  for key in ('sweep', 'compare'):
    if key in config:
      del config[key]
  for path, value in overrides.items():
    set_path(config, path, value)
  return config
