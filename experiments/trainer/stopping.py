"""Early stopping in the loop: the patience rule, the best weights, and their resume.

`config.early_stopping` (experiments/early_stopping.py) names an eval metric
('val/accuracy', 'val_ema/loss', ...), a mode, a patience in evaluations and
a min_delta. After every evaluation `BestKeeper.update` applies the rule;
on an improvement the whole train state (parameters, optimizer state with
any EMA/Polyak averages, model state) is saved in `<workdir>/checkpoints/best/
<step>/` by its own Checkpointer that keeps exactly one step, so the regular
`keep_checkpoints` rotation never touches it. `<workdir>/best.json` records
the metric, the best value and its step (and the stop step once stopped).

Resume: the rule's state is written beside every regular checkpoint
(`checkpoints/<step>/early_stopping.json`, written with the step) and read back with it. A best
checkpoint newer than the resumed step is dropped: the resumed run recomputes
the same evaluations (runs are bit-exact) and saves it again. A run that
stopped early resumes as finished.
"""
from __future__ import annotations

import json
from typing import Any, Callable, Optional

import jax

from experiments import checkpointing
from experiments import early_stopping
from experiments import workdir_paths
from experiments.trainer.state import Setup

BEST_DIR = f'{checkpointing.CHECKPOINT_DIR}/best'
STATE_FILE = 'early_stopping.json'
BEST_FILE = 'best.json'


def _write_json(path: workdir_paths.PathLike, value: Any) -> None:
  workdir_paths.write_text_atomically(path, json.dumps(value, indent=1))


class BestKeeper:
  """The early-stopping rule of a run, with its best checkpoint and best.json."""

  def __init__(self, rule: early_stopping.EarlyStopping, workdir: str, start_step: int,
               regular: checkpointing.Checkpointer):
    self.rule = rule
    self.workdir = workdir_paths.path(workdir)
    self.is_writer = jax.process_index() == 0
    self.state = rule.init()
    self.stopped_at: Optional[int] = None
    if start_step:
      path = regular.path(start_step) / STATE_FILE
      if path.exists():
        saved = json.loads(path.read_text())
        self.state, self.stopped_at = saved['state'], saved.get('stopped_at')
    self.best = checkpointing.Checkpointer(workdir, keep=1, subdir=BEST_DIR)
    for step in self.best.all_steps():  # saved after the resumed step: recomputed
      if step != self.state['best_step']:
        self.best.delete(step)

  @property
  def stopped(self) -> bool:
    return self.stopped_at is not None

  def update(self, step: int, metrics: dict[str, Any], host_state: Callable[[], Any]) -> bool:
    """Applies the rule to `metrics` at `step`; saves `host_state()` when it improved.

    Returns whether the run stops here.
    """
    if self.rule.metric not in metrics:
      raise ValueError(f'early_stopping.metric={self.rule.metric!r} is not among the eval '
                       f'metrics: {", ".join(sorted(metrics))}')
    self.state, improved, stop = self.rule.update(self.state, metrics[self.rule.metric], step)
    if improved:
      for old in self.best.all_steps():
        if old >= step:  # never happens in one run; a re-run after a crash may meet it
          self.best.delete(old)
      self.best.save(step, host_state())
    if stop:
      self.stopped_at = step
    if self.is_writer:
      _write_json(self.workdir / BEST_FILE, self.summary())
    return stop

  def summary(self) -> dict[str, Any]:
    """What best.json holds: the rule, the best value and step, where the run stopped."""
    return {'metric': self.rule.metric, 'mode': self.rule.mode, 'best': self.state['best'],
            'best_step': self.state['best_step'], 'evals': self.state['evals'],
            'bad_evals': self.state['bad_evals'], 'stopped_at': self.stopped_at,
            'checkpoint': str(self.best.directory / str(self.state['best_step']))
            if self.state['best_step'] is not None else None}

  def record(self) -> dict[str, float]:
    """The metrics.jsonl entries: the best value so far and its step ({} before any)."""
    if self.state['best_step'] is None:
      return {}
    return {'early_stopping/best': float(self.state['best']),
            'early_stopping/best_step': float(self.state['best_step'])}

  def checkpoint_extras(self) -> dict[str, Any]:
    """The rule's state, saved beside each regular checkpoint (read back on resume)."""
    return {STATE_FILE: {'state': self.state, 'stopped_at': self.stopped_at}}

  def close(self) -> None:
    self.best.close()


def keeper_of(setup: Setup, workdir: str, start_step: int,
              regular: checkpointing.Checkpointer) -> Optional[BestKeeper]:
  """The run's BestKeeper, or None when early stopping is off."""
  cfg = setup.config.get('early_stopping')
  rule = early_stopping.EarlyStopping.from_config(cfg) if cfg is not None else None
  return None if rule is None else BestKeeper(rule, workdir, start_step, regular)
