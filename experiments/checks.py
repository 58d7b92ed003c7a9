"""The checks and the error exit every entry point of `experiments` shares.

`positive_int` is the one test of a count (batch sizes, steps, trials, ...);
`one_line` turns any exception into the single line an entry point prints
with `fail` before it exits with status 2 (docs/config.md, "Validation");
`first_line` keeps only the first line of a long library message.
"""
from __future__ import annotations

import sys
from typing import Any, NoReturn


def is_positive_int(value: Any) -> bool:
  """True for an int ≥ 1 (bools are not counts)."""
  return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def positive_int(name: str, value: Any, allow_none: bool = False) -> Any:
  """Returns `value` if it is a positive int (or None when `allow_none`), else ValueError."""
  if value is None and allow_none:
    return value
  if not is_positive_int(value):
    raise ValueError(f'{name}={value!r}; valid: a positive integer'
                     + (' or None' if allow_none else ''))
  return value


def one_line(e: BaseException | str) -> str:
  """The message of `e` on one line (whitespace collapsed; the type name when empty)."""
  text = e if isinstance(e, str) else str(e)
  if isinstance(e, KeyError) and len(e.args) == 1 and isinstance(e.args[0], str):
    text = e.args[0]  # str(KeyError) wraps the message in quotes
  text = ' '.join(text.replace('\\n', ' ').split())
  if text or isinstance(e, str):
    return text
  return type(e).__name__


def first_line(e: BaseException) -> str:
  """The first line of an exception's message (its type name when empty)."""
  text = str(e).strip()
  return text.splitlines()[0] if text else type(e).__name__


def fail(message: BaseException | str, status: int = 2) -> NoReturn:
  """Prints `error: <message>` as one line on stderr and exits with `status`."""
  print(f'error: {one_line(message)}', file=sys.stderr, flush=True)
  sys.exit(status)
