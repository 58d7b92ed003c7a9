"""experiments.metrics: metrics.jsonl, TensorBoard events read back by TensorFlow, the progress display."""
from __future__ import annotations

import io
import json
import os

import pytest

from experiments import metrics


def _events(workdir) -> dict[tuple[int, str], float]:
  """(step, tag) -> value of every scalar in the workdir's event files, read by TensorFlow."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  seen = {}
  for name in sorted(os.listdir(workdir)):
    if name.startswith('events.out.tfevents'):
      for event in tf.compat.v1.train.summary_iterator(os.path.join(workdir, name)):
        for value in event.summary.value:
          seen[(event.step, value.tag)] = value.simple_value
  return seen


def test_writer_jsonl_and_events_hold_the_same_scalars(tmp_path):
  writer = metrics.MetricWriter(str(tmp_path))
  writer.write(1, {'train/loss': 2.5, 'lr': 1e-3})
  writer.write(2, {'train/loss': 1.25, 'val/accuracy': 0.75, 'eta': float('nan'),
                   'note': 'text'})
  # Before close: each record is on disk as soon as it is written.
  assert [r['step'] for r in metrics.read_jsonl(str(tmp_path / metrics.METRICS_FILE))] == [1, 2]
  assert _events(tmp_path) == {(1, 'train/loss'): 2.5, (1, 'lr'): pytest.approx(1e-3),
                               (2, 'train/loss'): 1.25, (2, 'val/accuracy'): 0.75}
  writer.close()
  records = metrics.read_jsonl(str(tmp_path / metrics.METRICS_FILE))
  assert records[1] == {'step': 2, 'train/loss': 1.25, 'val/accuracy': 0.75, 'eta': 'nan',
                        'note': 'text'}


def test_resumed_writer_truncates_jsonl_and_opens_a_new_event_file(tmp_path):
  first = metrics.MetricWriter(str(tmp_path))
  for step in (1, 2, 3):
    first.write(step, {'train/loss': float(step)})
  first.close()
  resumed = metrics.MetricWriter(str(tmp_path), resume_step=2)  # same second, same process
  resumed.write(3, {'train/loss': 30.0})
  resumed.close()
  records = metrics.read_jsonl(str(tmp_path / metrics.METRICS_FILE))
  assert [(r['step'], r['train/loss']) for r in records] == [(1, 1.0), (2, 2.0), (3, 30.0)]
  files = [f for f in os.listdir(tmp_path) if f.startswith('events.out.tfevents')]
  assert len(files) == 2
  assert _events(tmp_path)[(1, 'train/loss')] == 1.0  # the first file was not truncated


def test_disabled_writer_writes_nothing(tmp_path):
  writer = metrics.MetricWriter(str(tmp_path), enabled=False)
  writer.write(1, {'train/loss': 1.0})
  writer.close()
  assert not os.listdir(tmp_path)


def test_read_jsonl_stops_at_a_torn_line(tmp_path):
  path = tmp_path / metrics.METRICS_FILE
  path.write_text(json.dumps({'step': 1}) + '\n' + '{"step": 2, "train/lo')
  assert metrics.read_jsonl(str(path)) == [{'step': 1}]
  assert metrics.read_jsonl(str(tmp_path / 'missing.jsonl')) == []


def test_format_seconds():
  assert metrics.format_seconds(3725.4) == '1:02:05'
  assert metrics.format_seconds(float('nan')) == '?'


class _Terminal(io.StringIO):

  def isatty(self) -> bool:
    return True


def test_progress_log_lines_when_not_a_terminal():
  stream = io.StringIO()
  progress = metrics.Progress(10, 0, global_batch=32, num_devices=2, stream=stream)
  progress.message('Resuming from /tmp/x (step 0).')
  progress.show(5, {'train/loss': 0.5, 'images_per_sec': 640.0, 'eta': 65.0})
  assert stream.getvalue().splitlines() == [
      'Resuming from /tmp/x (step 0).', 'step 5/10 train/loss=0.5000 640 img/s eta 0:01:05']


def test_progress_bar_on_a_terminal():
  stream = _Terminal()
  progress = metrics.Progress(10, 2, global_batch=32, num_devices=2, stream=stream)
  progress.message('Resuming from /tmp/x (step 2).')
  progress.show(5, {'train/loss': 0.5, 'eta': 65.0})
  progress.show(10, {'train/loss': 0.25, 'val/accuracy': 0.875})
  out = stream.getvalue()
  assert 'Resuming from /tmp/x (step 2).\n' in out
  assert '5/10 train/loss=0.5000 eta 0:01:05' in out
  assert out.rstrip('\n').endswith('10/10 train/loss=0.2500 val/accuracy=0.8750')
  assert out.endswith('\n')  # the finished bar leaves the cursor on a new line
  assert '\nstep ' not in out  # no log lines mixed in


def test_progress_disabled_prints_nothing():
  stream = _Terminal()
  progress = metrics.Progress(10, 0, global_batch=32, num_devices=1, enabled=False,
                              stream=stream)
  progress.message('hello')
  progress.show(10, {'train/loss': 0.5})
  assert stream.getvalue() == ''


def test_progress_measures_throughput_without_paused_time(monkeypatch):
  clock = iter([0.0, 0.0, 1.0, 11.0, 13.0])  # start, mark; pause at 1, resume at 11; measure at 13
  monkeypatch.setattr(metrics.time, 'perf_counter', lambda: next(clock))
  progress = metrics.Progress(100, 0, global_batch=64, num_devices=4, enabled=False)
  progress.pause()
  progress.resume()
  m = progress.measure(6)  # 6 steps in 13 − 10 paused = 3 seconds
  assert m['steps_per_sec'] == pytest.approx(2.0)
  assert m['images_per_sec'] == pytest.approx(128.0)
  assert m['images_per_sec_per_core'] == pytest.approx(32.0)
  assert m['eta'] == pytest.approx(94 * 0.5)
