"""Where training metrics go: `metrics.jsonl`, TensorBoard event files, the terminal.

`MetricWriter.write(step, metrics)` appends one JSON object per logged step
(`{"step": 100, "train/loss": ..., "val/accuracy": ...}`) to
`<workdir>/metrics.jsonl`, flushed line by line so a killed run keeps what it
logged, and writes the same scalars as TensorBoard events
(`<workdir>/events.out.tfevents.*`). The event files are written here
directly (TFRecord framing of `Event` protocol buffers, the format
`tf.summary` writes) so a run never has to import TensorFlow just to log.

`Progress` turns step timings into images/s and an ETA and prints either a
one-line progress bar (stdout is a terminal) or plain log lines.

Only process 0 writes; other processes get a writer with `enabled=False`.
"""
from __future__ import annotations

import json
import math
import os
import socket
import struct
import sys
import time
from typing import Any, Mapping, Optional, TextIO

from experiments.jsonl import read as read_jsonl  # the one JSONL reader

METRICS_FILE = 'metrics.jsonl'
# Keys that depend on wall-clock time, not on the computation: a resumed run
# matches an uninterrupted one on every other key, bit for bit.
TIMING_KEYS = ('images_per_sec', 'images_per_sec_per_core', 'eta', 'steps_per_sec',
               'wall_time')


def _crc32c_table() -> tuple[int, ...]:
  table = []
  for i in range(256):
    c = i
    for _ in range(8):
      c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
    table.append(c)
  return tuple(table)


_CRC_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
  """CRC-32C (Castagnoli), the checksum of TFRecord framing."""
  crc = 0xFFFFFFFF
  for b in data:
    crc = _CRC_TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
  return crc ^ 0xFFFFFFFF


def _masked_crc(data: bytes) -> int:
  crc = crc32c(data)
  return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def _varint(n: int) -> bytes:
  out = bytearray()
  n &= (1 << 64) - 1
  while True:
    b = n & 0x7F
    n >>= 7
    if n:
      out.append(b | 0x80)
    else:
      out.append(b)
      return bytes(out)


def _field_bytes(number: int, payload: bytes) -> bytes:
  return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _event(wall_time: float, step: Optional[int] = None, file_version: Optional[str] = None,
           scalars: Optional[Mapping[str, float]] = None) -> bytes:
  """Serializes a tensorflow.Event (wall_time=1, step=2, file_version=3, summary=5)."""
  out = bytearray(_varint(1 << 3 | 1) + struct.pack('<d', wall_time))
  if step is not None:
    out += _varint(2 << 3 | 0) + _varint(int(step))
  if file_version is not None:
    out += _field_bytes(3, file_version.encode())
  if scalars:
    summary = bytearray()
    for tag, value in scalars.items():  # Summary.Value: tag=1, simple_value=2
      v = _field_bytes(1, tag.encode()) + _varint(2 << 3 | 5) + struct.pack('<f', value)
      summary += _field_bytes(1, v)
    out += _field_bytes(5, bytes(summary))
  return bytes(out)


class EventFileWriter:
  """Appends scalar summaries to a TensorBoard event file."""

  def __init__(self, logdir: str):
    name = f'events.out.tfevents.{int(time.time()):d}.{socket.gethostname()}.{os.getpid()}'
    self._file = open(os.path.join(logdir, name), 'ab')
    self._write(_event(time.time(), file_version='brain.Event:2'))

  def _write(self, record: bytes) -> None:
    header = struct.pack('<Q', len(record))
    self._file.write(header + struct.pack('<I', _masked_crc(header)) + record +
                     struct.pack('<I', _masked_crc(record)))
    self._file.flush()

  def scalars(self, step: int, scalars: Mapping[str, float]) -> None:
    self._write(_event(time.time(), step=step, scalars=scalars))

  def close(self) -> None:
    self._file.close()


def truncate_jsonl(path: str, last_step: int) -> None:
  """Keeps the records with step ≤ last_step: a resumed run rewrites the rest."""
  if not os.path.exists(path):
    return
  keep = [r for r in read_jsonl(path) if r.get('step', -1) <= last_step]
  tmp = path + '.tmp'
  with open(tmp, 'w') as f:
    for r in keep:
      f.write(json.dumps(r) + '\n')
  os.replace(tmp, path)


class MetricWriter:
  """metrics.jsonl + TensorBoard; a no-op unless `enabled` (process 0)."""

  def __init__(self, workdir: str, enabled: bool = True, resume_step: Optional[int] = None):
    self.enabled = enabled
    self._jsonl = None
    self._events = None
    if not enabled:
      return
    path = os.path.join(workdir, METRICS_FILE)
    # Records past the checkpoint we resume from were made by the killed run;
    # the resumed run recomputes them identically.
    truncate_jsonl(path, -1 if resume_step is None else resume_step)
    self._jsonl = open(path, 'a')
    self._events = EventFileWriter(workdir)

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
  """Throughput and ETA from step timings; a bar on a TTY, log lines otherwise.

  Time spent outside training steps (evaluation, checkpoints) is excluded
  with `pause()` / `resume()` so images/s measures the training loop only.
  """

  def __init__(self, total_steps: int, start_step: int, global_batch: int, num_devices: int,
               enabled: bool = True, stream: TextIO = sys.stdout):
    self.total_steps = total_steps
    self.global_batch = global_batch
    self.num_devices = num_devices
    self.enabled = enabled
    self.stream = stream
    self.tty = enabled and hasattr(stream, 'isatty') and stream.isatty()
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
    if self.tty:
      width = 24
      done = int(width * step / max(self.total_steps, 1))
      bar = '#' * done + '.' * (width - done)
      line = f'\r[{bar}] {step}/{self.total_steps} ' + ' '.join(parts)
      self.stream.write(line.ljust(120)[:160])
      if step >= self.total_steps:
        self.stream.write('\n')
    else:
      self.stream.write(f'step {step}/{self.total_steps} ' + ' '.join(parts) + '\n')
    self.stream.flush()

  def message(self, text: str) -> None:
    if self.enabled:
      if self.tty:
        self.stream.write('\n')
      self.stream.write(text + '\n')
      self.stream.flush()

  def elapsed(self) -> float:
    return time.perf_counter() - self._start
