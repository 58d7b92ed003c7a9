"""The one reader of JSON-lines files (`metrics.jsonl`): one JSON object a line.

Writers append a whole line (`json.dumps(record) + '\\n'`) and flush, so a
writer killed mid-write leaves at most its last line cut short, without its
newline. That line is dropped; every other line must be a JSON object, and one
that is not is an error naming the file and the line: a damaged middle of the
file is never skipped silently.
"""
from __future__ import annotations

import json
import os
from typing import Any, Union

from etils import epath


class JsonlError(ValueError):
  """A line of a JSON-lines file that is not a JSON object (not the torn last one)."""


def read(path: Union[str, os.PathLike]) -> list[dict[str, Any]]:
  """The records of `path`, in order; a missing file has none.

  Raises JsonlError (`<path>:<line>: ...`, one line) for a line other than an
  unterminated last one that is not a JSON object. Blank lines are skipped.
  """
  path = epath.Path(path)  # local, or an object store's URI (experiments/workdir_paths.py)
  if not path.exists():
    return []
  data = path.read_bytes()
  lines = data.split(b'\n')
  # After the last newline: '' for a complete file, else a line cut by a kill.
  torn = lines.pop()
  records = []
  for number, raw in enumerate(lines, start=1):
    if raw.strip():
      records.append(_record(raw, path, number))
  if torn.strip():
    try:
      records.append(_record(torn, path, len(lines) + 1))
    except JsonlError:
      pass  # the writer was killed mid-line
  return records


def _record(raw: bytes, path: str, number: int) -> dict[str, Any]:
  try:
    value = json.loads(raw.decode('utf-8'))
  except (UnicodeDecodeError, json.JSONDecodeError) as e:
    raise JsonlError(f'{path}:{number}: not a JSON line ({e})') from None
  if not isinstance(value, dict):
    raise JsonlError(f'{path}:{number}: expected a JSON object, got {type(value).__name__}')
  return value
