"""Where training metrics go: `metrics.jsonl`, TensorBoard event files, the terminal.

`MetricWriter.write(step, metrics)` appends one JSON object per logged step
(`{"step": 100, "train/loss": ..., "val/accuracy": ...}`) to
`<workdir>/metrics.jsonl`, flushed line by line so a killed run keeps what it
logged, and writes the same scalars as TensorBoard events
(`<workdir>/events.out.tfevents.*`) through tensorboardX, which writes the
format `tf.summary` writes without importing TensorFlow.

`Progress` turns step timings into images/s and an ETA and prints either a
tqdm progress bar (the stream is a terminal) or plain log lines.

Only process 0 writes; other processes get a writer with `enabled=False`.
"""
from __future__ import annotations

import itertools
import json
import math
import os
import sys
import time
from typing import Any, Mapping, Optional, TextIO

import tqdm

from experiments import workdir_paths
from experiments.jsonl import read as read_jsonl  # the one JSONL reader

METRICS_FILE = 'metrics.jsonl'
# Keys that depend on wall-clock time, not on the computation: a resumed run
# matches an uninterrupted one on every other key, bit for bit.
TIMING_KEYS = ('images_per_sec', 'images_per_sec_per_core', 'eta', 'steps_per_sec',
               'wall_time')


def truncate_jsonl(path: workdir_paths.PathLike, last_step: int) -> None:
  """Keeps the records with step ≤ last_step: a resumed run rewrites the rest."""
  path = workdir_paths.path(path)
  if not path.exists():
    return
  keep = [r for r in read_jsonl(path) if r.get('step', -1) <= last_step]
  workdir_paths.write_text_atomically(path, ''.join(json.dumps(r) + '\n' for r in keep))


class _EventFile:
  """One TensorBoard event file per writer, each record flushed as it is written.

  tensorboardX's synchronous `EventsWriter` (the one its `SummaryWriter` drives
  from a background queue): a killed run keeps every event it logged, as it
  keeps every JSON line (its flush also fsyncs; the trainer logs outside the
  window it times). The name ends in `.<pid>.<n>` like tf.summary's, so a run
  resumed within the same second opens a new file rather than truncating the
  previous one.
  """

  _opened = itertools.count()

  def __init__(self, logdir: workdir_paths.PathLike):
    # Imported here: tensorboardX imports torch when it is installed, a cost
    # readers of metrics.jsonl (plots, sweeps, benchmarks) should not pay.
    from tensorboardX import event_file_writer  # pylint: disable=g-import-not-at-top
    from tensorboardX.proto import event_pb2, summary_pb2  # pylint: disable=g-import-not-at-top
    self._event_pb2, self._summary_pb2 = event_pb2, summary_pb2
    workdir_paths.register_tensorboard_schemes()  # object stores through epath
    self._writer = event_file_writer.EventsWriter(
        str(workdir_paths.path(logdir) / 'events'),
        filename_suffix=f'.{os.getpid()}.{next(self._opened)}')

  def scalars(self, step: int, scalars: Mapping[str, float]) -> None:
    """One `Event` at `step` holding every scalar as a `simple_value`."""
    values = [self._summary_pb2.Summary.Value(tag=tag, simple_value=value)
              for tag, value in scalars.items()]
    self._writer.write_event(self._event_pb2.Event(
        wall_time=time.time(), step=int(step), summary=self._summary_pb2.Summary(value=values)))
    self._writer.flush()

  def close(self) -> None:
    self._writer.close()


class MetricWriter:
  """metrics.jsonl + TensorBoard; a no-op unless `enabled` (process 0)."""

  def __init__(self, workdir: workdir_paths.PathLike, enabled: bool = True,
               resume_step: Optional[int] = None):
    self.enabled = enabled
    self._jsonl = None
    self._events = None
    if not enabled:
      return
    path = workdir_paths.path(workdir) / METRICS_FILE
    # Records past the checkpoint we resume from were made by the killed run;
    # the resumed run recomputes them identically.
    truncate_jsonl(path, -1 if resume_step is None else resume_step)
    self._jsonl = path.open('a')
    self._events = _EventFile(workdir)

  def write(self, step: int, metrics: Mapping[str, Any]) -> None:
    if not self.enabled:
      return
    record = {'step': int(step)}
    record.update({k: _to_builtin(v) for k, v in metrics.items()})
    self._jsonl.write(json.dumps(record) + '\n')
    self._jsonl.flush()
    scalars = {k: float(v) for k, v in record.items()
               if k != 'step' and isinstance(v, (int, float)) and math.isfinite(v)}
    self._events.scalars(step, scalars)

  def close(self) -> None:
    if self._jsonl is not None:
      self._jsonl.close()
      self._events.close()


def _to_builtin(v: Any) -> Any:
  if hasattr(v, 'item'):
    v = v.item()
  if isinstance(v, float) and not math.isfinite(v):
    return str(v)  # JSON has no NaN/Inf; keep the line valid
  return v


def format_seconds(s: float) -> str:
  if not math.isfinite(s):
    return '?'
  s = int(round(s))
  return f'{s // 3600:d}:{s % 3600 // 60:02d}:{s % 60:02d}'


class Progress:
  """Throughput and ETA from step timings; a tqdm bar on a TTY, log lines otherwise.

  Time spent outside training steps (evaluation, checkpoints) is excluded
  with `pause()` / `resume()` so images/s measures the training loop only.
  The bar shows these figures rather than tqdm's own rate and ETA, which
  would count evaluation time and the compiling first step.
  """

  _BAR_FORMAT = '{bar:24} {n_fmt}/{total_fmt} {desc}'

  def __init__(self, total_steps: int, start_step: int, global_batch: int, num_devices: int,
               enabled: bool = True, stream: TextIO = sys.stdout):
    self.total_steps = total_steps
    self.global_batch = global_batch
    self.num_devices = num_devices
    self.enabled = enabled
    self.stream = stream
    self.tty = enabled and hasattr(stream, 'isatty') and stream.isatty()
    self._bar: Optional[tqdm.tqdm] = None
    if self.tty:
      self._bar = tqdm.tqdm(total=total_steps, initial=start_step, file=stream,
                            bar_format=self._BAR_FORMAT, ascii=True, dynamic_ncols=True)
    self._mark_step = start_step
    self._mark_time = time.perf_counter()
    self._paused_at: Optional[float] = None
    self._step_time = float('nan')
    self._start = time.perf_counter()

  def pause(self) -> None:
    self._paused_at = time.perf_counter()

  def resume(self) -> None:
    if self._paused_at is not None:
      self._mark_time += time.perf_counter() - self._paused_at
      self._paused_at = None

  def reset(self, step: int) -> None:
    """Restarts the timing window at `step` (e.g. after the compiling first step)."""
    self._mark_step = step
    self._mark_time = time.perf_counter()

  def measure(self, step: int) -> dict[str, float]:
    """Throughput since the last measurement and the ETA; restarts the window."""
    now = time.perf_counter()
    steps = step - self._mark_step
    if steps > 0:
      self._step_time = (now - self._mark_time) / steps
    self._mark_step, self._mark_time = step, now
    ips = self.global_batch / self._step_time if self._step_time > 0 else float('nan')
    return {'images_per_sec': ips, 'images_per_sec_per_core': ips / self.num_devices,
            'steps_per_sec': 1.0 / self._step_time if self._step_time > 0 else float('nan'),
            'eta': (self.total_steps - step) * self._step_time}

  def show(self, step: int, metrics: Mapping[str, Any]) -> None:
    if not self.enabled:
      return
    shown = ('train/loss', 'train/accuracy', 'val/loss', 'val/accuracy')
    parts = [f'{k}={metrics[k]:.4f}' for k in shown if isinstance(metrics.get(k), float)]
    if isinstance(metrics.get('images_per_sec'), float) and math.isfinite(
        metrics['images_per_sec']):
      parts.append(f'{metrics["images_per_sec"]:.0f} img/s')
    if 'eta' in metrics:
      parts.append(f'eta {format_seconds(metrics["eta"])}')
    if self._bar is not None:
      self._bar.update(step - self._bar.n)
      self._bar.set_description_str(' '.join(parts))
      if step >= self.total_steps:
        self._bar.close()
        self._bar = None
    else:
      self.stream.write(f'step {step}/{self.total_steps} ' + ' '.join(parts) + '\n')
      self.stream.flush()

  def message(self, text: str) -> None:
    if not self.enabled:
      return
    if self._bar is not None:
      self._bar.write(text, file=self.stream)  # clears the bar, prints, redraws it
    else:
      self.stream.write(text + '\n')
      self.stream.flush()

  def elapsed(self) -> float:
    return time.perf_counter() - self._start
