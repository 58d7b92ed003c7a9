"""Early stopping against a validation metric: a small pure state machine.

    es = early_stopping.EarlyStopping.from_config(config.early_stopping)
    state = es.init()                                  # or the dict saved with the run
    state, improved, stop = es.update(state, metrics[es.metric], step)
    if improved: save the weights as the best ones
    if stop: end the run

A value v improves on the best b when v < b - min_delta (mode 'min') or
v > b + min_delta (mode 'max'); the first evaluation always improves. Each
evaluation without improvement adds one to `bad_evals`; the run stops when
`bad_evals` reaches `patience` (Prechelt 1998, "Early Stopping — But When?",
the "patience" criterion). A NaN value never improves. The state is a plain
dict of JSON numbers ({best, best_step, bad_evals, evals}), so it can be
written next to a checkpoint and read back to resume exactly.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Optional

import ml_collections

MODES = ('min', 'max')


def default_config() -> ml_collections.ConfigDict:
  """The `early_stopping` config section; off (metric None) by default."""
  c = ml_collections.ConfigDict()
  c.metric = ml_collections.FieldReference(None, field_type=str)
  c.mode = 'max'
  c.patience = 10
  c.min_delta = 0.0
  return c


@dataclasses.dataclass(frozen=True)
class EarlyStopping:
  """Patience-based stopping on `metric` (a key of the eval metrics, e.g. 'val/accuracy')."""
  metric: str
  mode: str = 'max'
  patience: int = 10
  min_delta: float = 0.0

  def __post_init__(self):
    if not isinstance(self.metric, str) or not self.metric:
      raise ValueError(f'early_stopping.metric={self.metric!r}; must be a metric name such as '
                       "'val/accuracy' (None: off)")
    if self.mode not in MODES:
      raise ValueError(f'early_stopping.mode={self.mode!r}; valid: {", ".join(MODES)}')
    if isinstance(self.patience, bool) or not isinstance(self.patience, int) or self.patience < 1:
      raise ValueError(f'early_stopping.patience={self.patience!r}; must be a positive int '
                       '(evaluations without improvement)')
    if (isinstance(self.min_delta, bool) or not isinstance(self.min_delta, (int, float))
        or not math.isfinite(self.min_delta) or self.min_delta < 0):
      raise ValueError(f'early_stopping.min_delta={self.min_delta!r}; must be a finite '
                       'number >= 0')

  @classmethod
  def from_config(cls, cfg: ml_collections.ConfigDict) -> Optional['EarlyStopping']:
    """From the `early_stopping` section; None when `metric` is None (off)."""
    if cfg.metric is None:
      return None
    return cls(metric=cfg.metric, mode=cfg.mode, patience=cfg.patience,
               min_delta=cfg.min_delta)

  def init(self) -> dict[str, Any]:
    """The state before any evaluation."""
    return {'best': None, 'best_step': None, 'bad_evals': 0, 'evals': 0}

  def improves(self, value: float, best: Optional[float]) -> bool:
    """Whether `value` beats `best` by more than `min_delta` in the right direction."""
    if math.isnan(value):
      return False
    if best is None:
      return True
    if self.mode == 'min':
      return value < best - self.min_delta
    return value > best + self.min_delta

  def update(self, state: dict[str, Any], value: float, step: Optional[int] = None
             ) -> tuple[dict[str, Any], bool, bool]:
    """(new state, improved, stop) after one evaluation giving `value` at `step`."""
    value = float(value)
    improved = self.improves(value, state['best'])
    new = dict(state, evals=int(state['evals']) + 1)
    if improved:
      new.update(best=value, best_step=None if step is None else int(step), bad_evals=0)
    else:
      new['bad_evals'] = int(state['bad_evals']) + 1
    return new, improved, new['bad_evals'] >= self.patience
