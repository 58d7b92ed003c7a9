"""Command-line helpers shared by experiments.sweep and experiments.compare."""
from __future__ import annotations

import sys
from typing import Optional, Sequence


def fail(message: str, status: int = 2) -> None:
  """Prints `error: <message>` (one line) to stderr and exits with `status`."""
  print(f'error: {" ".join(str(message).split())}', file=sys.stderr, flush=True)
  sys.exit(status)


def raw_config_flag(argv: Sequence[str]) -> Optional[str]:
  """The `--config` value as given on the command line (path and `:arg`)."""
  for i, a in enumerate(argv):
    if a.startswith('--config='):
      return a.split('=', 1)[1]
    if a == '--config' and i + 1 < len(argv):
      return argv[i + 1]
  return None


def config_source(raw: str) -> tuple[str, Optional[str]]:
  """'path.py:arg' -> ('path.py', 'arg'); no arg -> ('path.py', None)."""
  path, _, arg = raw.partition(':')
  return path, (arg or None)
