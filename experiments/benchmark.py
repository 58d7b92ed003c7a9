r"""Benchmarks: each figure is a ratio against a peer measured in the same run.

    python -m experiments.benchmark                  # every section
    python -m experiments.benchmark --only optim     # one section
    python -m experiments.benchmark --only models,seg,train --json=bench.json

Prints a header (CPU model, cores, versions, the float32 matmul peak of jax
and torch: experiments/benchmarks/machine.py), one JSON line per
measurement (prefix `BENCH `) so results can be grepped out of logs, then a
table; `--json=FILE` also writes {"header": …, "rows": […]} to FILE. Sections: optim (first-order updates vs
optax; minimize(lbfgs) vs scipy), models (forward/train step vs HuggingFace
PyTorch), train (trainer loop vs bare step, input pipeline), seg (SegFormer-B0
train step vs HuggingFace), checkpoint (step-time overhead of saving every N
steps, asynchronous vs synchronous).
"""
from __future__ import annotations

import importlib
import json
import os
import sys

from absl import app
from absl import flags
from absl import logging

from experiments.benchmarks import machine

# A section runs its modules in order; `optim` covers first- and second-order.
SECTIONS = {
    'optim': ('experiments.benchmarks.optim', 'experiments.benchmarks.lbfgs'),
    'models': ('experiments.benchmarks.models',),
    'train': ('experiments.benchmarks.train',),
    'seg': ('experiments.benchmarks.seg',),
    'checkpoint': ('experiments.benchmarks.checkpoint',),
}

_ONLY = flags.DEFINE_list('only', list(SECTIONS), f'Sections to run, of {list(SECTIONS)}.')
_QUICK = flags.DEFINE_bool('quick', False, 'Smaller sizes and fewer repeats (smoke run).')
_JSON = flags.DEFINE_string('json', None, 'Also write the header and rows to this JSON file.')


def format_table(rows: list[dict]) -> str:
  header = f'{"section":<10} {"measurement":<44} {"ours":>12} {"peer":>12} {"unit":<10} {"ratio":>7}  peer'
  lines = [header, '-' * len(header)]
  for r in rows:
    lines.append(f'{r["section"]:<10} {r["name"]:<44} {r["ours"]:>12.4g} {r["peer"]:>12.4g} '
                 f'{r["unit"]:<10} {r["ratio"]:>7.3f}  {r["peer_name"]}')
  return '\n'.join(lines)


def main(argv: list[str]) -> None:
  del argv
  unknown = [s for s in _ONLY.value if s not in SECTIONS]
  if unknown:
    print(f'Unknown benchmark section(s) {unknown}; valid: {", ".join(SECTIONS)}',
          file=sys.stderr)
    sys.exit(2)
  if _JSON.value:
    folder = os.path.dirname(os.path.abspath(_JSON.value))
    if os.path.isdir(_JSON.value):
      print(f'--json={_JSON.value} is a directory; give a file path', file=sys.stderr)
      sys.exit(2)
    if not os.path.isdir(folder) or not os.access(folder, os.W_OK | os.X_OK):
      print(f'--json={_JSON.value}: {folder} is not a writable directory', file=sys.stderr)
      sys.exit(2)
  if not flags.FLAGS['verbosity'].present:
    # The trainer's checkpoint library logs every save at INFO; the BENCH lines are the output.
    logging.set_verbosity(logging.WARNING)
  header = machine.describe(_QUICK.value)
  print(machine.format_header(header), flush=True)
  print('BENCH_HEADER ' + json.dumps(header), flush=True)
  rows = []
  for section in _ONLY.value:
    for module_name in SECTIONS[section]:
      module = importlib.import_module(module_name)
      for m in module.run(quick=_QUICK.value):
        rows.append(m.as_dict())
        print('BENCH ' + json.dumps(rows[-1]), flush=True)
  print('\n' + machine.format_header(header))
  print('ratio > 1: ours is faster (time ratio peer/ours, or throughput ours/peer)')
  print(format_table(rows))
  if _JSON.value:
    with open(_JSON.value, 'w') as f:
      json.dump({'header': header, 'rows': rows}, f, indent=1)


if __name__ == '__main__':
  app.run(main)
