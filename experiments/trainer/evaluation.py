"""Evals: every example of the eval split exactly once, summed in float64 on the host."""
from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional

import jax
import numpy as np

from experiments import data as data_lib
from experiments import weight_averaging
from experiments.trainer.state import AXIS
from experiments.trainer.state import dtype_of
from experiments.trainer.state import pmap_devices
from experiments.trainer.state import Setup
from experiments.trainer.state import unreplicate


class EvalStep(NamedTuple):
  """An eval step in two compiled halves, so the model compiles once per image shape.

  `forward(params, model_state, images) -> logits` (dense tasks: the task's
  whole-image or sliding-window `predict`); `sums(logits, batch) -> task
  sums`, psum'd over AXIS under pmap. Batches whose labels differ in shape (dense eval
  at the original label resolution) recompile only `sums`. `place` puts a
  host batch `[D, b/D, ...]` on the devices (None: split over them for pmap);
  `host` brings the sums back (one copy, numpy).
  """
  forward: Callable[..., jax.Array]
  sums: Callable[..., dict[str, jax.Array]]
  place: Optional[Callable[[Any], Any]] = None
  host: Callable[[Any], Any] = unreplicate


def make_eval_fns(setup: Setup, axis: Optional[str] = AXIS) -> EvalStep:
  """The pure halves of the eval step (see `EvalStep`); `pmap_eval_step` maps them.

  `axis`: the pmap axis the sums are psum'd over, or None under `jax.jit`
  (global arrays: the sums are already over the whole batch).
  """
  module, task, dtype = setup.module, setup.task, dtype_of(setup.config.dtype)

  def forward(params, model_state, images):
    def apply(x):
      return module.apply({'params': params, **model_state}, x.astype(dtype), train=False)
    predict = getattr(task, 'predict', None)  # dense tasks: whole-image / sliding-window
    return predict(apply, images) if predict else apply(images)

  def sums(logits, batch):
    extras = {k: v for k, v in batch.items() if k not in ('image', 'label', 'mask')}
    out = task.eval_sums(logits, batch['label'], batch['mask'], **extras)
    return out if axis is None else jax.lax.psum(out, axis)

  return EvalStep(forward, sums)


def pmap_eval_step(setup: Setup) -> EvalStep:
  fns = make_eval_fns(setup)
  devices = pmap_devices(setup.devices)
  return EvalStep(jax.pmap(fns.forward, axis_name=AXIS, devices=devices),
                  jax.pmap(fns.sums, axis_name=AXIS, devices=devices))


def evaluate(eval_step: EvalStep, params, model_state, eval_batches, task, devices=None
             ) -> dict[str, float]:
  """Runs one pass over `eval_batches`; sums in float64 on the host."""
  sums = None
  for batch in data_lib.prefetch_to_device(iter(eval_batches), 2, devices,
                                           place=eval_step.place):
    logits = eval_step.forward(params, model_state, batch['image'])
    rest = {k: v for k, v in batch.items() if k != 'image'}
    out = eval_step.host(eval_step.sums(logits, rest))
    out = jax.tree.map(lambda x: np.asarray(x, np.float64), out)
    sums = out if sums is None else jax.tree.map(np.add, sums, out)
  metrics = task.eval_metrics(sums)
  metrics['val/count'] = int(sums['count'])
  return metrics


def evaluate_averages(eval_step: EvalStep, params, opt_state, model_state, eval_batches, task,
                      devices=None) -> dict[str, float]:
  """`evaluate` for the raw weights ('val/*') and each average in `opt_state`.

  EMA weights report as 'val_ema/*', Polyak's as 'val_polyak/*'
  (experiments/weight_averaging.py); all use the current model state
  (BatchNorm statistics), which is not averaged.
  """
  out: dict[str, float] = {}
  for prefix, weights in weight_averaging.eval_params(params, opt_state).items():
    metrics = evaluate(eval_step, weights, model_state, eval_batches, task, devices)
    if prefix != 'val':
      metrics = {f'{prefix}/{k[len("val/"):]}': v for k, v in metrics.items()
                 if k.startswith('val/') and k != 'val/count'}
    out.update(metrics)
  return out
