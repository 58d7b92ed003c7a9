r"""Benchmarks: each figure is a ratio against a peer measured in the same run.

    python -m experiments.benchmark                  # every section
    python -m experiments.benchmark --only optim     # one section
    python -m experiments.benchmark --only models,train --quick

Prints a table, then one JSON line per measurement (prefix `BENCH `), so
results can be grepped out of logs. Sections: optim (first-order updates vs
optax; minimize(lbfgs) vs scipy), models (forward/train step vs HuggingFace
PyTorch), train (trainer loop vs bare step, input pipeline), seg (SegFormer-B0
train step vs HuggingFace), checkpoint (step-time overhead of saving every N
steps, asynchronous vs synchronous).
"""
from __future__ import annotations

if __name__ == '__main__':
  from experiments import malloc_tuning  # first: it may re-execute the process
  malloc_tuning.reexec_with_malloc_tunables()

import importlib
import json
import os
import sys

from absl import app
from absl import flags

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
  rows = []
  for section in _ONLY.value:
    for module_name in SECTIONS[section]:
      module = importlib.import_module(module_name)
      for m in module.run(quick=_QUICK.value):
        rows.append(m.as_dict())
        print('BENCH ' + json.dumps(rows[-1]), flush=True)
  print('\nratio > 1: ours is faster (time ratio peer/ours, or throughput ours/peer)')
  # Both sides share the process, so both run under this malloc setting.
  print(f'GLIBC_TUNABLES={os.environ.get("GLIBC_TUNABLES", "(unset)")} '
        '(see experiments/malloc_tuning.py)')
  print(format_table(rows))


if __name__ == '__main__':
  app.run(main)
