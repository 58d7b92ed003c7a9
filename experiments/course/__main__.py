r"""Command line: run the course's experiments, write their plots and claims, check them.

    python -m experiments.course --out=/tmp/course [--quick] [--only=warmup,backprop]

Each experiment (experiments/course/<name>.py, listed in
`experiments.course.EXPERIMENTS`) writes OUT/<name>*.png and returns its
claims: a measured number, the expectation the course states, and whether
it holds. All of them go to OUT/claims.json,

    {experiment: {claim: {"measured": ..., "expected": "...", "holds": bool}}}

and to a table on stdout. `--quick` runs each experiment at a reduced size
(fewer steps, narrower nets) chosen so that every claim still shows.

Exit status: 0 every claim holds; 1 some claim fails; 2 bad command line
(one line on stderr, nothing written).
"""
from __future__ import annotations

import importlib
import json
import os
import sys
import time

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')

from absl import flags  # noqa: E402

from experiments.course import EXPERIMENTS  # noqa: E402
from experiments.course import claim as claim_lib  # noqa: E402
from experiments import checks  # noqa: E402


def parse_flags(argv: list[str]) -> flags.FlagValues:
  """The command line in a fresh FlagValues (so `main` can run more than once)."""
  fv = flags.FlagValues()
  flags.DEFINE_string('out', 'runs/course', 'Output directory (plots, claims.json, runs).',
                      flag_values=fv)
  flags.DEFINE_bool('quick', False, 'Reduced sizes: the whole course in minutes.',
                    flag_values=fv)
  flags.DEFINE_list('only', [], f'Experiments to run (default all): {",".join(EXPERIMENTS)}.',
                    flag_values=fv)
  fv(argv)
  return fv


def run(names: list[str], out: str, quick: bool) -> dict[str, dict[str, claim_lib.Claim]]:
  """{experiment: {claim: Claim}} for each of `names`, in order; prints progress."""
  results = {}
  for name in names:
    start = time.time()
    module = importlib.import_module(f'experiments.course.{name}')
    results[name] = module.run(out, quick)
    print(f'{name}: {len(results[name])} claims in {time.time() - start:.1f} s', flush=True)
  return results


def table(results: dict[str, dict[str, claim_lib.Claim]]) -> str:
  rows = [('experiment', 'claim', 'measured', 'expected', '')]
  for name, claims in results.items():
    for key, c in claims.items():
      rows.append((name, key, claim_lib.fmt(c.measured), c.expected,
                   'PASS' if c.holds else 'FAIL'))
  widths = [max(len(r[i]) for r in rows) for i in range(4)]
  lines = ['  '.join(r[i].ljust(widths[i]) for i in range(4)) + '  ' + r[4] for r in rows]
  lines.insert(1, '-' * len(lines[0]))
  return '\n'.join(line.rstrip() for line in lines)


def exit_status(results: dict[str, dict[str, claim_lib.Claim]]) -> int:
  """0 when every claim holds, else 1."""
  return 0 if all(c.holds for claims in results.values() for c in claims.values()) else 1


def main(argv: list[str]) -> int:
  try:
    args = parse_flags(argv)
  except flags.Error as e:
    checks.fail(e)
  names = list(args.only) or list(EXPERIMENTS)
  unknown = [n for n in names if n not in EXPERIMENTS]
  if unknown:
    checks.fail(f'--only: unknown experiment(s) {", ".join(unknown)}; valid: {", ".join(EXPERIMENTS)}')
  out = args.out
  os.makedirs(out, exist_ok=True)
  start = time.time()
  results = run(names, out, args.quick)
  with open(os.path.join(out, 'claims.json'), 'w') as f:
    json.dump({name: {k: c.to_json() for k, c in claims.items()}
               for name, claims in results.items()}, f, indent=1)
  print(table(results))
  failed = sum(not c.holds for claims in results.values() for c in claims.values())
  total = sum(len(claims) for claims in results.values())
  print(f'{total - failed}/{total} claims hold ({time.time() - start:.0f} s); '
        f'plots and claims.json in {out}', flush=True)
  return exit_status(results)


if __name__ == '__main__':
  sys.exit(main(sys.argv))
