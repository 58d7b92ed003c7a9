"""experiments/jsonl.py: the torn last line of a killed writer is dropped, any
other bad line is an error naming the file and the line."""
import json

import pytest

from experiments import jsonl
from experiments import metrics

RECORDS = [{'step': 1, 'train/loss': 2.5}, {'step': 2, 'train/loss': 1.25, 'note': 'é'}]


def _write(path, text):
  path.write_bytes(text if isinstance(text, bytes) else text.encode())
  return str(path)


def _lines(records):
  return ''.join(json.dumps(r) + '\n' for r in records)


def test_complete_file_and_missing_file(tmp_path):
  assert jsonl.read(_write(tmp_path / 'm.jsonl', _lines(RECORDS))) == RECORDS
  assert jsonl.read(str(tmp_path / 'absent.jsonl')) == []
  assert jsonl.read(_write(tmp_path / 'e.jsonl', '')) == []
  assert jsonl.read(_write(tmp_path / 'b.jsonl', '\n' + _lines(RECORDS) + '\n')) == RECORDS


@pytest.mark.parametrize('cut', [1, 5, 17, -2])
def test_torn_last_line_is_dropped(tmp_path, cut):
  """Any prefix of the last record without its newline, as a kill leaves it."""
  last = json.dumps({'step': 3, 'train/loss': 0.625, 'note': 'ü'}).encode()
  path = _write(tmp_path / 'm.jsonl', _lines(RECORDS).encode() + last[:cut])
  assert jsonl.read(path) == RECORDS


def test_torn_multibyte_character_is_dropped(tmp_path):
  tail = json.dumps({'note': 'ü'}, ensure_ascii=False).encode()
  cut = tail.index('ü'.encode()) + 1  # half of the two-byte character
  assert jsonl.read(_write(tmp_path / 'm.jsonl', _lines(RECORDS).encode() + tail[:cut])) \
      == RECORDS


def test_unterminated_complete_last_line_is_kept(tmp_path):
  path = _write(tmp_path / 'm.jsonl', _lines(RECORDS[:1]) + json.dumps(RECORDS[1]))
  assert jsonl.read(path) == RECORDS


@pytest.mark.parametrize('bad, message', [
    ('{"step": 2, "train/lo\n', 'not a JSON line'),
    ('[1, 2]\n', 'expected a JSON object, got list'),
    (b'{"note": "\xff"}\n', 'not a JSON line'),
])
def test_corrupt_middle_line_names_file_and_line(tmp_path, bad, message):
  first = _lines(RECORDS[:1]).encode()
  bad = bad if isinstance(bad, bytes) else bad.encode()
  path = _write(tmp_path / 'm.jsonl', first + bad + _lines(RECORDS[1:]).encode())
  with pytest.raises(jsonl.JsonlError, match=f'^{path}:2: {message}') as e:
    jsonl.read(path)
  assert '\n' not in str(e.value)


def test_a_newline_terminated_corrupt_last_line_is_an_error(tmp_path):
  """A writer writes a line and its newline at once: a corrupt line that has
  its newline is damage, not a kill."""
  path = _write(tmp_path / 'm.jsonl', _lines(RECORDS) + '{"step": 3,\n')
  with pytest.raises(jsonl.JsonlError, match=':3: not a JSON line'):
    jsonl.read(path)


def test_metrics_reads_through_the_one_reader():
  assert metrics.read_jsonl is jsonl.read

