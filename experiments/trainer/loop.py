"""The loop: one linear, readable training loop (big_vision style).

    setup = trainer.build(config)           # validates; builds data info, model, task, optimizer
    trainer.train_and_evaluate(setup, workdir)

In the order a run goes through: lock the workdir, checkpoint (restore the
newest intact one; a damaged one is moved aside), input, update and evals
compiled once for `config.parallelism` (trainer/parallel.py: pmap over the
local devices, or jit over a mesh with the state replicated or sharded; state
donated), then per step: log, evaluate, checkpoint. Non-finite steps are
detected one step late (a cheap sync) and stop the run with `NonFiniteError`,
as do non-finite eval metrics. Evals cover the raw weights ('val/*') and any
EMA/Polyak average ('val_ema/*', 'val_polyak/*'); with `early_stopping.metric`
set the run stops when the metric stalls and keeps its best state in
checkpoints/best (trainer/stopping.py). SIGTERM/SIGINT finish the current
step, save it and raise `Preempted` once the save is on disk. Checkpoints are
written asynchronously (`config.async_checkpoints`): the next steps run while
orbax writes.
"""
from __future__ import annotations

import contextlib
import math
from typing import Any, Optional

import jax

from experiments import checkpointing
from experiments import data as data_lib
from experiments import metrics as metrics_lib
from experiments import preemption
from experiments import workdir_lock
from experiments import workdir_paths
from experiments.trainer import stopping
from experiments.trainer import parallel
from experiments.trainer.evaluation import evaluate_averages
from experiments.trainer.setup import init_state
from experiments.trainer.state import NonFiniteError
from experiments.trainer.state import Preempted
from experiments.trainer.state import Setup


def _every(step: int, every: Optional[int], total: int) -> bool:
  return step == total or bool(every) and step % every == 0


def _check_eval_finite(step: int, metrics: dict[str, Any], last_good: Optional[str]) -> None:
  bad = sorted(k for k, v in metrics.items() if isinstance(v, float) and not math.isfinite(v))
  if bad:
    where = (f'the last good checkpoint is {last_good}' if last_good else
             'no checkpoint was written yet')
    raise NonFiniteError(f'eval metric(s) {", ".join(bad)} are NaN/Inf at step {step}; '
                         f'stopped, {where}')


def _evaluate_only(setup: Setup, state, p_eval_step, eval_batches, writer, progress
                   ) -> dict[str, Any]:
  """total_steps=0 (init_from): the loaded weights' eval metrics, written for step 0."""
  record = evaluate_averages(p_eval_step, state.params, state.opt_state, state.model_state,
                             eval_batches, setup.task, setup.devices)
  _check_eval_finite(0, record, None)
  writer.write(0, record)
  progress.show(0, record)
  return record


def train_and_evaluate(setup: Setup, workdir: str, *, progress_stream=None) -> dict[str, Any]:
  """Trains `setup` in `workdir` (resuming from its last checkpoint); returns the last record.

  Raises:
    NonFiniteError: the loss, the gradients or an eval metric became NaN/Inf.
    Preempted: SIGTERM/SIGINT arrived; the step reached is saved.
    workdir_lock.WorkdirBusyError: another live run holds `workdir`.
    checkpointing.DamagedCheckpointError: checkpoints exist and none is intact.
  """
  with contextlib.ExitStack() as stack:
    stack.enter_context(workdir_lock.for_run(workdir))
    stop_request = stack.enter_context(preemption.StopRequest())
    return _train(setup, workdir, stop_request, progress_stream)


def _train(setup: Setup, workdir: str, stop_request: preemption.StopRequest, progress_stream
           ) -> dict[str, Any]:
  config = setup.config
  is_writer = jax.process_index() == 0
  rng = jax.random.PRNGKey(config.seed)
  init_rng, train_rng = jax.random.split(rng)

  # Checkpoint: restore the newest intact one, if any.
  ckpt = checkpointing.Checkpointer(workdir, keep=config.keep_checkpoints,
                                    async_save=config.get('async_checkpoints', True))
  state = init_state(setup, init_rng)
  try:
    start_step, state = ckpt.restore_latest(state, log=lambda line: print(line, flush=True))
  except checkpointing.DamagedCheckpointError:
    ckpt.close()  # orbax's threads must stop before the interpreter does
    raise
  last_good = ckpt.path(start_step) if start_step else None
  keeper = stopping.keeper_of(setup, workdir, start_step, ckpt)
  end_step = start_step if keeper is not None and keeper.stopped else setup.total_steps

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
  par = parallel.make(setup)
  train_iter = data_lib.prefetch_to_device(train_iter, config.get('prefetch'), setup.devices,
                                           place=par.place_batch)
  eval_batches = data_lib.make_eval_iterator(
      config.data, setup.eval_batch, setup.num_local_devices, jax.process_index(),
      jax.process_count())

  # Update and evals, compiled once for the mode; the state placed on its devices.
  p_train_step, p_eval_step = par.train_step, par.eval_step
  state = par.place_state(state)
  rngs = par.place_rng(train_rng)
  progress.message(f'parallelism={par.mode} over {par.num_devices} device(s): parameters + '
                   f'optimizer state {par.state_bytes / 2**20:.2f} MiB per device.')

  record: dict[str, Any] = {}
  if setup.total_steps == 0 and not start_step:
    record = _evaluate_only(setup, state, p_eval_step, eval_batches, writer, progress)
  pending = None  # (step, metrics) of the previous step, checked one step late
  last_logged_train = None

  def check(step, m):
    if not bool(par.host(m['finite'])):
      where = (f'the last good checkpoint is {last_good}' if last_good else
               'no checkpoint was written yet')
      raise NonFiniteError(f'loss or gradients are NaN/Inf at step {step}; stopped, '
                           f'{where}; metrics up to step {last_logged_train} are in '
                           f'{workdir_paths.path(workdir) / metrics_lib.METRICS_FILE}')

  try:
    for step in range(start_step + 1, end_step + 1):
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
      # One process polls every step; several agree at log steps (a collective).
      preempted = (jax.process_count() == 1 or do_log) and stop_request.should_stop()
      do_ckpt = do_ckpt or preempted
      if not (do_log or do_eval or do_ckpt):
        continue
      check(step, m)
      pending = None
      record = {}
      if do_log:
        host = par.host(m)
        host.pop('finite')
        record.update({k: float(v) for k, v in host.items()})
        record['state_bytes_per_device'] = float(par.state_bytes)
        record.update(progress.measure(step))
        record['epoch'] = step * setup.global_batch / setup.info.num_train
        last_logged_train = step
      progress.pause()
      stop = False
      if do_eval:
        evals = evaluate_averages(p_eval_step, state.params, state.opt_state,
                                  state.model_state, eval_batches, setup.task, setup.devices)
        _check_eval_finite(step, evals, last_good)
        record.update(evals)
        if keeper is not None:
          stop = keeper.update(step, record, lambda: par.host(state))
          record.update(keeper.record())
          do_ckpt = do_ckpt or stop  # a stopped run resumes as finished
      if do_ckpt:
        ckpt.save(step, par.host(state),
                  extras=keeper.checkpoint_extras() if keeper is not None else None)
        last_good = ckpt.path(step)
      if record:
        writer.write(step, record)
        progress.show(step, record)
      progress.resume()
      if preempted:
        ckpt.wait()
        raise Preempted(f'{stop_request.signal_name} at step {step}: saved {last_good}; rerun '
                        'the same command to resume')
      if stop:
        best = keeper.summary()
        progress.message(f'Early stopping at step {step}: {best["metric"]} has not improved '
                         f'for {keeper.rule.patience} evaluations; best {best["best"]} at step '
                         f'{best["best_step"]} ({best["checkpoint"]}).')
        break
    if pending is not None:
      check(*pending)
  finally:
    train_iter.close()  # stops and joins the prefetch thread, if any, before exit
    writer.close()
    ckpt.close()
    if keeper is not None:
      keeper.close()

  if not record:  # resumed a finished run: report its last record
    logged = metrics_lib.read_jsonl(workdir_paths.path(workdir) / metrics_lib.METRICS_FILE)
    record = logged[-1] if logged else {}
  if is_writer:
    from experiments import plots  # pylint: disable=g-import-not-at-top  (matplotlib is slow)
    records = metrics_lib.read_jsonl(workdir_paths.path(workdir) / metrics_lib.METRICS_FILE)
    plots.training_curves(records, workdir_paths.path(workdir) / 'curves.png',
                          title=f'{config.model.name} on {config.data.name}')
  return record
