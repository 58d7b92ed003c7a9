"""The `sweep` section of a config, validated into a `SweepSpec`.

    sweep.method      'random' | 'grid' | 'coarse_to_fine'
    sweep.num_trials  trials of a random sweep (grid: the grid's size)
    sweep.metric      a metrics.jsonl key, e.g. 'val/accuracy'
    sweep.direction   'maximize' | 'minimize'
    sweep.summary     'last' (the metric's final value) | 'best' (over the run)
    sweep.seed        seeds the draws (same seed, same trials)
    sweep.budget      per-trial overrides, e.g. {'total_steps': 200}
    sweep.grid_points values per numeric parameter of a grid sweep
    sweep.stages      coarse_to_fine: [{'num_trials': 20, 'budget': {...},
                      'top_k': 5}, ...]; stage s+1 narrows every range to the
                      span of stage s's `top_k` best trials, widened by
                      `sweep.margin` × the old width (in log space for log
                      parameters).
    sweep.parameters  {label: space.log_uniform(path, low, high), ...}
"""
from __future__ import annotations

import dataclasses
import json
from typing import Any, Mapping, Optional

import ml_collections

from experiments import checks
from experiments import config_schema
from experiments.sweeps import space

METHODS = ('random', 'grid', 'coarse_to_fine')


@dataclasses.dataclass(frozen=True)
class Stage:
  """One stage: how many trials, their budget overrides, how many survive."""
  num_trials: int
  budget: dict[str, Any]
  top_k: int


@dataclasses.dataclass(frozen=True)
class SweepSpec:
  method: str
  metric: str
  direction: str
  summary: str
  seed: int
  margin: float
  grid_points: int
  stages: tuple[Stage, ...]
  params: tuple[space.Param, ...]

  @property
  def total_trials(self) -> int:
    return sum(s.num_trials for s in self.stages)

  def fingerprint(self) -> str:
    """A canonical text of the spec, stored with the study to detect reuse of
    a workdir by a different sweep."""
    d = dataclasses.asdict(self)
    if self.method == 'random':  # a random sweep may be extended with more trials
      for st in d['stages']:
        st['num_trials'] = st['top_k'] = None
    return json.dumps(d, sort_keys=True, default=repr)

  def better(self, a: float, b: float) -> bool:
    return a > b if self.direction == 'maximize' else a < b


def _budget(value: Any, where: str, config: ml_collections.ConfigDict) -> dict[str, Any]:
  if value is None:
    return {}
  if not isinstance(value, (Mapping, ml_collections.ConfigDict)):
    raise ValueError(f'{where}={value!r}: expected a dict of config overrides, '
                     "e.g. {'total_steps': 100}")
  flat = space.flatten(value)
  for path in flat:
    space._check_path(config, path, where)  # pylint: disable=protected-access
  return flat


def parse_sweep(config: ml_collections.ConfigDict,
                num_trials: Optional[int] = None) -> SweepSpec:
  """Validates `config.sweep` against `config`; ValueError with one line.

  Swept and budget paths may name any knob of the config's model, optimizer
  and schedule (experiments/config_schema.py), listed in the file or not.
  """
  if 'sweep' not in config:
    raise ValueError('the config has no `sweep` section; see experiments/sweeps/spec.py')
  config = config_schema.complete(config)
  sweep = config.sweep
  get = lambda key, default=None: sweep.get(key, default)  # noqa: E731
  method = get('method', 'random')
  if method not in METHODS:
    raise ValueError(f'sweep.method={method!r}; valid: {", ".join(METHODS)}')
  direction = get('direction', 'maximize')
  if direction not in ('maximize', 'minimize'):
    raise ValueError(f'sweep.direction={direction!r}; valid: maximize, minimize')
  summary = get('summary', 'last')
  if summary not in ('last', 'best'):
    raise ValueError(f'sweep.summary={summary!r}; valid: last, best')
  metric = get('metric', 'val/accuracy')
  if not isinstance(metric, str) or not metric:
    raise ValueError(f'sweep.metric={metric!r}: expected a metrics.jsonl key such as '
                     "'val/accuracy'")
  margin = float(get('margin', 0.25))
  if not 0 <= margin:
    raise ValueError(f'sweep.margin={margin!r}: expected >= 0')
  grid_points = checks.positive_int('sweep.grid_points', get('grid_points', 3))
  seed = get('seed', config.get('seed', 0))
  if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
    raise ValueError(f'sweep.seed={seed!r}; valid: an integer >= 0')
  params = tuple(space.parse_space(get('parameters'), config))
  budget = _budget(get('budget'), 'sweep.budget', config)

  if method == 'coarse_to_fine':
    raw = get('stages')
    if not isinstance(raw, (list, tuple)) or len(raw) < 1:
      raise ValueError(f'sweep.stages={raw!r}: coarse_to_fine needs a list of stages '
                       "[{'num_trials': N, 'budget': {...}, 'top_k': K}, ...]")
    stages = []
    for i, st in enumerate(raw):
      where = f'sweep.stages[{i}]'
      if isinstance(st, ml_collections.ConfigDict):
        st = st.to_dict()
      if not isinstance(st, Mapping):
        raise ValueError(f'{where}={st!r}: expected a dict')
      unknown = set(st) - {'num_trials', 'budget', 'top_k'}
      if unknown:
        raise ValueError(f'{where}: unknown keys {sorted(unknown)}; valid: num_trials, '
                         'budget, top_k')
      n = checks.positive_int(f'{where}.num_trials', st.get('num_trials'))
      top_k = checks.positive_int(f'{where}.top_k', st.get('top_k', max(1, n // 4)))
      stages.append(Stage(n, {**budget, **_budget(st.get('budget'), f'{where}.budget',
                                                      config)}, top_k))
  elif method == 'grid':
    n = len(space.grid(params, grid_points))
    stages = [Stage(n, budget, n)]
  else:
    n = checks.positive_int('sweep.num_trials',
                            num_trials if num_trials is not None else get('num_trials'))
    stages = [Stage(n, budget, n)]
  return SweepSpec(method, metric, direction, summary, seed, margin, grid_points,
                   tuple(stages), params)
