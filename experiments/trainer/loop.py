"""The loop: one linear, readable training loop (big_vision style).

    setup = trainer.build(config)           # validates; builds data info, model, task, optimizer
    trainer.train_and_evaluate(setup, workdir)

In the order a run goes through: checkpoint (restore the latest), input,
update and evals pmap'd once over the local devices (axis `AXIS`, state
donated), then per step: log, evaluate, checkpoint. Non-finite steps are
detected one step late (a cheap sync) and stop the run with `NonFiniteError`.
"""
from __future__ import annotations

import os
from typing import Any, Optional

import jax

from experiments import checkpointing
from experiments import data as data_lib
from experiments import metrics as metrics_lib
from experiments.trainer.evaluation import evaluate
from experiments.trainer.evaluation import pmap_eval_step
from experiments.trainer.setup import init_state
from experiments.trainer.state import AXIS
from experiments.trainer.state import NonFiniteError
from experiments.trainer.state import replicate
from experiments.trainer.state import Setup
from experiments.trainer.state import unreplicate
from experiments.trainer.step import make_train_step


def _every(step: int, every: Optional[int], total: int) -> bool:
  return step == total or bool(every) and step % every == 0


def _evaluate_only(setup: Setup, state, p_eval_step, eval_batches, writer, progress
                   ) -> dict[str, Any]:
  """total_steps=0 (init_from): the loaded weights' eval metrics, written for step 0."""
  record = evaluate(p_eval_step, state.params, state.model_state, eval_batches, setup.task,
                    setup.devices)
  writer.write(0, record)
  progress.show(0, record)
  return record


def train_and_evaluate(setup: Setup, workdir: str, *, progress_stream=None) -> dict[str, Any]:
  """Trains `setup` in `workdir` (resuming from its last checkpoint); returns the last record.

  Raises:
    NonFiniteError: the loss or the gradients became NaN/Inf.
  """
  config = setup.config
  is_writer = jax.process_index() == 0
  rng = jax.random.PRNGKey(config.seed)
  init_rng, train_rng = jax.random.split(rng)

  # Checkpoint: restore the latest, if any.
  ckpt = checkpointing.Checkpointer(workdir, keep=config.keep_checkpoints)
  state = init_state(setup, init_rng)
  start_step = ckpt.latest_step() or 0
  if start_step:
    state = ckpt.restore(start_step, state)
  last_good = ckpt.path(start_step) if start_step else None

  writer = metrics_lib.MetricWriter(workdir, enabled=is_writer, resume_step=start_step)
  kwargs = {} if progress_stream is None else {'stream': progress_stream}
  progress = metrics_lib.Progress(setup.total_steps, start_step, setup.global_batch,
                                  setup.num_devices, enabled=is_writer, **kwargs)
  if start_step:
    progress.message(f'Resuming from {ckpt.path(start_step)} (step {start_step}).')

  # Input.
  train_iter = data_lib.make_train_iterator(
      config.data, setup.global_batch, config.seed, start_step=start_step,
      num_local_devices=setup.num_local_devices, process_index=jax.process_index(),
      process_count=jax.process_count(), full_batch=config.full_batch)
  train_iter = data_lib.prefetch_to_device(train_iter, config.get('prefetch', 2), setup.devices)
  eval_batches = data_lib.make_eval_iterator(
      config.data, setup.eval_batch, setup.num_local_devices, jax.process_index(),
      jax.process_count())

  # Update and evals, pmap'd once.
  p_train_step = jax.pmap(make_train_step(setup), axis_name=AXIS, donate_argnums=(0,),
                          devices=setup.devices)
  p_eval_step = pmap_eval_step(setup)
  state = replicate(state, setup.devices)
  rngs = replicate(train_rng, setup.devices)

  record: dict[str, Any] = {}
  if setup.total_steps == 0 and not start_step:
    record = _evaluate_only(setup, state, p_eval_step, eval_batches, writer, progress)
  pending = None  # (step, metrics) of the previous step, checked one step late
  last_logged_train = None

  def check(step, m):
    if not bool(unreplicate(m['finite'])):
      where = (f'the last good checkpoint is {last_good}' if last_good else
               'no checkpoint was written yet')
      raise NonFiniteError(f'loss or gradients are NaN/Inf at step {step}; stopped, '
                           f'{where}; metrics up to step {last_logged_train} are in '
                           f'{os.path.join(workdir, metrics_lib.METRICS_FILE)}')

  try:
    for step in range(start_step + 1, setup.total_steps + 1):
      batch = next(train_iter)
      state, m = p_train_step(state, batch, rngs)
      if pending is not None:
        check(*pending)  # the previous step is done (or nearly) by now: cheap sync
      pending = (step, m)
      if step == start_step + 1:
        jax.block_until_ready(m)
        progress.reset(step)  # exclude compilation from throughput

      do_log = _every(step, config.log_every, setup.total_steps)
      do_eval = _every(step, config.eval_every, setup.total_steps)
      do_ckpt = _every(step, config.checkpoint_every, setup.total_steps)
      if not (do_log or do_eval or do_ckpt):
        continue
      check(step, m)
      pending = None
      record = {}
      if do_log:
        host = unreplicate(m)
        host.pop('finite')
        record.update({k: float(v) for k, v in host.items()})
        record.update(progress.measure(step))
        record['epoch'] = step * setup.global_batch / setup.info.num_train
        last_logged_train = step
      progress.pause()
      if do_eval:
        record.update(evaluate(p_eval_step, state.params, state.model_state, eval_batches,
                               setup.task, setup.devices))
      if do_ckpt:
        ckpt.save(step, unreplicate(state))
        last_good = ckpt.path(step)
      if record:
        writer.write(step, record)
        progress.show(step, record)
      progress.resume()
    if pending is not None:
      check(*pending)
  finally:
    train_iter.close()  # stops and joins the prefetch thread before exit
    writer.close()
    ckpt.close()

  if not record:  # resumed a finished run: report its last record
    logged = metrics_lib.read_jsonl(os.path.join(workdir, metrics_lib.METRICS_FILE))
    record = logged[-1] if logged else {}
  if is_writer:
    from experiments import plots  # pylint: disable=g-import-not-at-top  (matplotlib is slow)
    records = metrics_lib.read_jsonl(os.path.join(workdir, metrics_lib.METRICS_FILE))
    plots.training_curves(records, os.path.join(workdir, 'curves.png'),
                          title=f'{config.model.name} on {config.data.name}')
  return record
