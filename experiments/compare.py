r"""Command line: compare optimizers (or schedules) at equal tuning budget.

    python -m experiments.compare --config=experiments/configs/compare_digits.py \
        --workdir=/tmp/cmp --optimizers=sgd,momentum,nesterov,adagrad,rmsprop,adam,lbfgs \
        [--seeds=3 --lr_grid=1e-3,1e-2,1e-1,1 --target=0.95 --workers=2]
    python -m experiments.compare --config=... --workdir=... --optimizer=momentum \
        --schedules=constant,step,cosine,linear,inverse_sqrt,warmup_cosine

Fairness (the AlgoPerf lesson): every arm gets the same tuning budget, a grid
sweep of `optimizer.learning_rate` over the same `--lr_grid` (log-spaced
points), scored by the final `--metric`; the best learning rate is rerun with
`--seeds` − 1 more seeds (the sweep's own run is seed 0... the config's seed).
Each arm's optimizer section is reset to `{name, learning_rate}` (the
optimizer's own defaults: `momentum` is SGD with β = 0.9), so hyperparameters
of the config's optimizer do not leak into other arms. Second-order arms
(`lbfgs`, `bfgs`, `newton`, ...) choose their steps by line search: no
learning-rate sweep, and they run in the trainer's full-batch mode.

Every run is an `experiments.main` run driven by the sweep engine (Optuna
study per arm and phase in `WORKDIR/compare.db`), so the comparison resumes
after a kill and each run is inspectable in `WORKDIR/<arm>/...`.

Output: a table (final metric mean ± std over seeds, steps and wall time to
`--target`, best learning rate), `WORKDIR/compare.csv`, and
`WORKDIR/compare.png` (training loss and validation accuracy against step and
against wall time since the first logged step, mean over seeds with the
min–max band).

Exit status: 0 done; 2 bad command line or config (one line on stderr).
"""
from __future__ import annotations

import csv
import dataclasses
import math
import os
import sys
from typing import Any, Optional, Sequence

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')

from absl import flags  # noqa: E402
import numpy as np  # noqa: E402

from experiments import checks  # noqa: E402
from experiments import config_cli  # noqa: E402
from experiments import jsonl  # noqa: E402

SCHEDULES = ('constant', 'step', 'cosine', 'linear', 'inverse_sqrt', 'warmup_cosine')

# --config=path.py[:arg] (the base experiment config) and its --config.* overrides are
# parsed by experiments.config_cli, so every knob of its model and optimizer is reachable.
_WORKDIR = flags.DEFINE_string('workdir', None, 'Comparison directory.')
_OPTIMIZERS = flags.DEFINE_list('optimizers', None, 'Optimizers to compare (optim.create names).')
_OPTIMIZER = flags.DEFINE_string('optimizer', None, 'With --schedules: the optimizer for all arms '
                                 '(default: the config\'s).')
_SCHEDULES = flags.DEFINE_list('schedules', None, 'Schedules to compare instead of optimizers.')
_LR_GRID = flags.DEFINE_list('lr_grid', None, 'Learning rates every arm tries (default: '
                             'config.compare.lr_grid or 1e-3,1e-2,1e-1,1).')
_SEEDS = flags.DEFINE_integer('seeds', None, 'Seeds for the best learning rate (default 3).')
_METRIC = flags.DEFINE_string('metric', None, 'metrics.jsonl key scored (default val/accuracy).')
_TARGET = flags.DEFINE_float('target', None, 'Target metric value for steps/time to target.')
_WORKERS = flags.DEFINE_integer('workers', 1, 'Runs at once.')
_STORAGE = flags.DEFINE_string('storage', None, 'Optuna RDB URL (default sqlite:///WORKDIR/'
                               'compare.db).')
_TRAINER = flags.DEFINE_string('trainer', 'experiments.main', 'Module run per trial.')
_SECOND_ORDER_STEPS = flags.DEFINE_integer(
    'second_order_steps', None, 'Iterations of full-batch second-order arms (default: '
    'config.compare.second_order_steps or 50).')


@dataclasses.dataclass
class Arm:
  """One row of the comparison: its name and the config overrides it sets."""
  name: str
  overrides: dict[str, Any]
  sweep_lr: bool


@dataclasses.dataclass
class ArmResult:
  arm: str
  best_lr: Optional[float]
  lr_scores: dict[float, Optional[float]]
  finals: list[float]
  steps_to_target: list[Optional[int]]
  time_to_target: list[Optional[float]]
  curves: list[list[dict[str, Any]]]
  failures: list[str]


def with_wall_time(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
  """Records with `wall_time`: seconds of training since the first logged
  step (so start-up and the first step's compilation, which differ between
  optimizers for reasons unrelated to them, are left out). The trainer's own
  `wall_time` when logged, else the sum of Δstep / steps_per_sec over the
  log intervals."""
  out, t, last = [], 0.0, 0
  for r in records:
    r = dict(r)
    if not isinstance(r.get('wall_time'), (int, float)):
      sps = r.get('steps_per_sec')
      step = r.get('step', last)
      if isinstance(sps, (int, float)) and sps > 0 and math.isfinite(sps):
        t += (step - last) / sps
      r['wall_time'] = t
      last = step
    out.append(r)
  if out:
    t0 = out[0]['wall_time']
    for r in out:
      r['wall_time'] -= t0
  return out


def to_target(records: Sequence[dict[str, Any]], metric: str, target: Optional[float],
              direction: str) -> tuple[Optional[int], Optional[float]]:
  """(step, wall time) of the first record reaching `target`, else (None, None)."""
  if target is None:
    return None, None
  for r in records:
    v = r.get(metric)
    if isinstance(v, (int, float)) and (v >= target if direction == 'maximize' else v <= target):
      return r.get('step'), r.get('wall_time')
  return None, None


def make_arms(optimizers: Optional[Sequence[str]], schedules: Optional[Sequence[str]],
              optimizer: Optional[str], config: Any, second_order_steps: int) -> list[Arm]:
  """The arms, validated against optim's registry and schedule names."""
  import optim  # pylint: disable=g-import-not-at-top
  if bool(optimizers) == bool(schedules):
    raise ValueError('give exactly one of --optimizers=a,b,... or --schedules=a,b,...')
  names = optim.names()
  second_order = optim.second_order.methods.is_second_order
  if optimizers:
    bad = [o for o in optimizers if o not in names]
    if bad:
      raise ValueError(f'--optimizers: unknown {bad}; valid: {", ".join(names)}')
    arms = []
    for o in optimizers:
      if second_order(o):
        arms.append(Arm(o, {'optimizer': {'name': o, 'learning_rate': None},
                            'full_batch': True, 'total_epochs': None,
                            'total_steps': second_order_steps,
                            'schedule': {'name': 'constant'}}, sweep_lr=False))
      else:
        arms.append(Arm(o, {'optimizer': {'name': o, 'learning_rate': 0.1}}, sweep_lr=True))
    return arms
  bad = [s for s in schedules if s not in optim.schedules.NAMES]
  if bad:
    raise ValueError(f'--schedules: unknown {bad}; valid: {", ".join(optim.schedules.NAMES)}')
  opt = optimizer or config.optimizer.name
  if opt not in names or second_order(opt):
    raise ValueError(f'--optimizer={opt!r}: need a first-order optim.create name')
  base = {'optimizer': {'name': opt, 'learning_rate': 0.1}} if optimizer else {}
  arms = []
  for s in schedules:
    extra: dict[str, Any] = {}
    has_warmup = config.get('schedule', {}).get('warmup_steps') or config.get(
        'schedule', {}).get('warmup_epochs')
    if s.startswith('warmup_') and not has_warmup:
      # A warmup schedule needs a warmup: 5% of the run unless the config sets one.
      if config.get('total_steps'):
        extra['schedule.warmup_steps'] = max(1, int(config.total_steps) // 20)
      elif config.get('total_epochs'):
        extra['schedule.warmup_epochs'] = float(config.total_epochs) / 20
    arms.append(Arm(s, {**base, 'schedule.name': s, **extra}, sweep_lr=True))
  return arms


def _spec(metric: str, direction: str, params: tuple, budget: dict[str, Any], n: int,
          seed: int, grid_points: int = 1) -> Any:
  from experiments.sweeps import spec as spec_lib  # pylint: disable=g-import-not-at-top
  return spec_lib.SweepSpec('grid', metric, direction, 'last', seed, 0.0, grid_points,
                            (spec_lib.Stage(n, budget, n),), params)


def run_arm(arm: Arm, *, config: Any, config_path: str, config_arg: Optional[str],
            cli: dict[str, Any], workdir: str, storage: str, trainer: str,
            lr_grid: Sequence[float], seeds: int, metric: str, direction: str,
            target: Optional[float], workers: int) -> ArmResult:
  """The arm's learning-rate grid, then its best setting over more seeds."""
  from experiments.sweeps import engine  # pylint: disable=g-import-not-at-top
  from experiments.sweeps import space  # pylint: disable=g-import-not-at-top
  base_seed = int(config.get('seed', 0))
  common = dict(config_path=config_path, config_arg=config_arg, cli_overrides=cli,
                storage_url=storage, trainer=trainer,
                log=lambda line: print(f'[{arm.name}] {line}', flush=True))
  if arm.sweep_lr:
    lr = space.Param('lr', 'optimizer.learning_rate', 'choice', values=tuple(lr_grid))
    phase1 = engine.Sweep(_spec(metric, direction, (lr,), arm.overrides, len(lr_grid),
                                base_seed), workdir=os.path.join(workdir, arm.name, 'lr'),
                          study_name=f'{arm.name}/lr', **common)
  else:
    phase1 = engine.Sweep(_spec(metric, direction, (), arm.overrides, 1, base_seed),
                          workdir=os.path.join(workdir, arm.name, 'lr'),
                          study_name=f'{arm.name}/lr', **common)
  results = phase1.run(workers=workers)
  ok = [r for r in results if r.state == 'COMPLETE']
  lr_scores = {r.params['lr']: (r.value if r.state == 'COMPLETE' else None)
               for r in results if 'lr' in r.params}
  failures = [f'lr={r.params.get("lr")}: {r.reason}' for r in results if r.state != 'COMPLETE']
  if not ok:
    return ArmResult(arm.name, None, lr_scores, [], [], [], [], failures)
  best = (max if direction == 'maximize' else min)(ok, key=lambda r: r.value)
  best_lr = best.params.get('lr')
  runs = [best]
  if seeds > 1:
    budget = dict(arm.overrides)
    if best_lr is not None:
      budget['optimizer.learning_rate'] = best_lr
    seed = space.Param('seed', 'seed', 'choice',
                       values=tuple(base_seed + i for i in range(1, seeds)))
    phase2 = engine.Sweep(_spec(metric, direction, (seed,), budget, seeds - 1, base_seed),
                          workdir=os.path.join(workdir, arm.name, 'seeds'),
                          study_name=f'{arm.name}/seeds', **common)
    more = phase2.run(workers=workers)
    runs += [r for r in more if r.state == 'COMPLETE']
    failures += [f'seed={r.params.get("seed")}: {r.reason}' for r in more
                 if r.state != 'COMPLETE']
  curves = [with_wall_time(jsonl.read(os.path.join(r.workdir, 'metrics.jsonl')))
            for r in runs]
  hits = [to_target(c, metric, target, direction) for c in curves]
  return ArmResult(arm.name, best_lr, lr_scores, [float(r.value) for r in runs],
                   [h[0] for h in hits], [h[1] for h in hits], curves, failures)


def _mean_or_dash(values: Sequence[Optional[float]], fmt: str) -> str:
  if not values or any(v is None for v in values):
    reached = sum(v is not None for v in values)
    return f'- ({reached}/{len(values)})' if values else '-'
  return format(float(np.mean(values)), fmt)


def table(results: Sequence[ArmResult], metric: str, target: Optional[float],
          direction: str) -> str:
  """Arms sorted by mean final metric (best first)."""
  sign = -1 if direction == 'maximize' else 1
  order = sorted(results, key=lambda r: sign * np.mean(r.finals) if r.finals else math.inf)
  head = ['arm', f'final {metric} (mean ± std)', 'seeds', f'steps to {target}',
          f'wall s to {target}', 'best lr']
  rows = []
  for r in order:
    final = (f'{np.mean(r.finals):.4f} ± {np.std(r.finals):.4f}' if r.finals
             else 'FAILED')
    rows.append([r.arm, final, str(len(r.finals)), _mean_or_dash(r.steps_to_target, '.0f'),
                 _mean_or_dash(r.time_to_target, '.1f'),
                 f'{r.best_lr:.3g}' if r.best_lr is not None else 'line search'])
  widths = [max(len(h), *(len(x[i]) for x in rows)) for i, h in enumerate(head)]
  fmt = lambda cells: '  '.join(c.ljust(w) for c, w in zip(cells, widths))  # noqa: E731
  lines = [fmt(head), fmt(['-' * w for w in widths]), *map(fmt, rows)]
  for r in order:
    if r.failures:
      lines.append(f'{r.arm}: failed runs: ' + '; '.join(r.failures))
  return '\n'.join(lines)


def write_csv(results: Sequence[ArmResult], path: str, metric: str) -> None:
  with open(path, 'w', newline='') as f:
    w = csv.writer(f)
    w.writerow(['arm', 'best_lr', f'{metric}_mean', f'{metric}_std', 'seeds',
                'steps_to_target_mean', 'wall_s_to_target_mean', 'lr_grid_scores'])
    for r in results:
      steps = [s for s in r.steps_to_target if s is not None]
      times = [t for t in r.time_to_target if t is not None]
      w.writerow([r.arm, r.best_lr, np.mean(r.finals) if r.finals else '',
                  np.std(r.finals) if r.finals else '', len(r.finals),
                  np.mean(steps) if steps and len(steps) == len(r.finals) else '',
                  np.mean(times) if times and len(times) == len(r.finals) else '',
                  ';'.join(f'{k}:{v}' for k, v in r.lr_scores.items())])


def _band(curves: Sequence[Sequence[dict[str, Any]]], key: str, x: str):
  from experiments import plots  # pylint: disable=g-import-not-at-top
  series = [plots.series(c, key, x) for c in curves]
  series = [s for s in series if s[0]]
  if not series:
    return None
  n = min(len(s[0]) for s in series)
  xs = np.mean([s[0][:n] for s in series], axis=0)
  ys = np.asarray([s[1][:n] for s in series])
  return xs, ys.mean(0), ys.min(0), ys.max(0)


def plot(results: Sequence[ArmResult], path: str, metric: str) -> None:
  """compare.png: loss and `metric` against step and wall time, per arm the
  mean over seeds with a min-max band."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, axes = plt.subplots(2, 2, figsize=(11, 7.5))
  for col, x in enumerate(('step', 'wall_time')):
    for row, key in enumerate(('train/loss', metric)):
      ax = axes[row][col]
      for i, r in enumerate(results):
        band = _band(r.curves, key, x)
        if band is None:
          continue
        xs, mean, lo, hi = band
        ax.plot(xs, mean, color=f'C{i}', label=r.arm)
        ax.fill_between(xs, lo, hi, color=f'C{i}', alpha=0.2)
      ax.set_xlabel('wall time (s)' if x == 'wall_time' else 'step')
      ax.set_ylabel(key)
      if key.endswith('loss'):
        ax.set_yscale('log')
      ax.grid(alpha=0.3)
      ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def main(argv: list[str]) -> int:
  try:
    parsed = config_cli.parse(argv, required=True)
    config = parsed.config
    flags.FLAGS(parsed.rest)
    if not _WORKDIR.value:
      raise flags.Error('--workdir is required')
    checks.positive_int('--workers', _WORKERS.value)
  except Exception as e:  # pylint: disable=broad-except  (bad flags or config: one line)
    checks.fail(e)

  from experiments.sweeps import storage as storage_lib  # pylint: disable=g-import-not-at-top
  cfg = config.get('compare', {}) or {}
  try:
    metric = _METRIC.value or cfg.get('metric', 'val/accuracy')
    direction = cfg.get('direction', 'maximize' if 'acc' in metric else 'minimize')
    target = _TARGET.value if _TARGET.value is not None else cfg.get('target')
    seeds = _SEEDS.value or cfg.get('seeds', 3)
    raw_grid = _LR_GRID.value or cfg.get('lr_grid', (1e-3, 1e-2, 1e-1, 1.0))
    try:
      lr_grid = [float(v) for v in raw_grid]
    except ValueError:
      raise ValueError(f'--lr_grid={raw_grid!r}: expected numbers') from None
    if not lr_grid or any(not v > 0 for v in lr_grid):
      raise ValueError(f'--lr_grid={raw_grid!r}: expected positive learning rates')
    if seeds < 1:
      raise ValueError(f'--seeds={seeds}: expected >= 1')
    optimizers = _OPTIMIZERS.value or (None if _SCHEDULES.value else cfg.get('optimizers'))
    arms = make_arms(optimizers, _SCHEDULES.value, _OPTIMIZER.value, config,
                     _SECOND_ORDER_STEPS.value or cfg.get('second_order_steps', 50))
    workdir = os.path.abspath(_WORKDIR.value)
    if _STORAGE.value:
      storage_lib.open_storage(_STORAGE.value)
  except ValueError as e:
    checks.fail(e)
  os.makedirs(workdir, exist_ok=True)
  storage = _STORAGE.value or f'sqlite:///{os.path.join(workdir, "compare.db")}'
  path, arg = config_cli.split_source(parsed.source)
  cli = parsed.overrides
  print(f'compare: {", ".join(a.name for a in arms)}; lr grid {lr_grid}; {seeds} seed(s); '
        f'{metric} ({direction}); runs in {workdir}', flush=True)
  results = []
  for arm in arms:
    try:
      results.append(run_arm(arm, config=config, config_path=path, config_arg=arg,
                             cli=cli, workdir=workdir, storage=storage,
                             trainer=_TRAINER.value, lr_grid=lr_grid, seeds=seeds,
                             metric=metric, direction=direction, target=target,
                             workers=_WORKERS.value))
    except ValueError as e:
      checks.fail(e)
  print(table(results, metric, target, direction), flush=True)
  write_csv(results, os.path.join(workdir, 'compare.csv'), metric)
  plot(results, os.path.join(workdir, 'compare.png'), metric)
  print(f'report: {os.path.join(workdir, "compare.csv")}, {os.path.join(workdir, "compare.png")}',
        flush=True)
  return 0


if __name__ == '__main__':
  sys.exit(main(sys.argv))
