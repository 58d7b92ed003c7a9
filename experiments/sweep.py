r"""Command line: a hyperparameter sweep on Optuna, one trainer run per trial.

    python -m experiments.sweep --config=experiments/configs/sweep_digits.py \
        --workdir=/tmp/sweep [--workers=2] [--storage=postgresql://host/db] \
        [--config.sweep.num_trials=100 --config.total_steps=300 ...]

The config's `sweep` section (experiments/sweeps/spec.py) names the swept
parameters by config path, the method (random, grid, coarse_to_fine), the
metric and the per-trial budget. Every trial is a normal
`python -m experiments.main` run in `WORKDIR/trials/<stage>_<trial>/`; the
Optuna study in `--storage` (default `sqlite:///WORKDIR/sweep.db`) is the
source of truth, so

- `--workers N` runs N trials at once here, and more processes on other
  machines may join the same study through a shared RDB URL
  (`--storage=postgresql://...`, docs/sweeps.md); a worker that dies
  mid-trial stops beating (`--heartbeat_s`), and after `--stale_after`
  seconds its trial is re-queued for the others;
- killing the sweep and rerunning the same command finishes what remains:
  finished trials are never rerun, interrupted ones resume from their
  checkpoint;
- a trial that crashes or diverges is recorded as failed with its reason and
  the sweep goes on.

One line per finished trial, `val acc: 0.412000, lr: 1.405206e-04, reg:
4.793564e-01, (1 / 100)`; at the end a table sorted by the metric,
`WORKDIR/sweep.csv` and `WORKDIR/sweep.png`.

Exit status: 0 done; 2 bad command line, config, search space or storage (one
line on stderr, before any trial starts).
"""
from __future__ import annotations

import os
import sys

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')

from absl import flags  # noqa: E402

from experiments import checks  # noqa: E402
from experiments import config_cli  # noqa: E402

# --config=path.py[:arg] (a config with a `sweep` section) and its --config.* overrides are
# parsed by experiments.config_cli, so every knob of its model and optimizer is reachable.
_WORKDIR = flags.DEFINE_string('workdir', None, 'Sweep directory (trials/, sweep.db, report).')
_STORAGE = flags.DEFINE_string(
    'storage', None, 'Optuna RDB URL shared by all workers (default sqlite:///WORKDIR/sweep.db).')
_STUDY = flags.DEFINE_string('study_name', 'sweep', 'Optuna study name inside the storage.')
_WORKERS = flags.DEFINE_integer('workers', 1, 'Trials run at once by this process.')
_NUM_TRIALS = flags.DEFINE_integer('num_trials', None, 'Overrides sweep.num_trials (random).')
_TRAINER = flags.DEFINE_string(
    'trainer', 'experiments.main',
    'Module run per trial as `python -m MODULE --config=FILE --workdir=DIR`.')
_HEARTBEAT = flags.DEFINE_integer(
    'heartbeat_s', 10, 'Seconds between the heartbeats a worker records for its running trial.')
_STALE = flags.DEFINE_integer(
    'stale_after', 120, 'A RUNNING trial without a heartbeat for this many seconds is failed '
    'and re-queued (SQLite storage: as soon as its worker process on this host is gone).')


def main(argv: list[str]) -> int:
  try:
    parsed = config_cli.parse(argv, required=True)
    config = parsed.config
    flags.FLAGS(parsed.rest)
    if 'sweep' not in config:
      raise ValueError(f'--config={parsed.source} has no `sweep` section (a sweep config names '
                       'the swept parameters; see experiments/configs/sweep_digits.py)')
    if not _WORKDIR.value:
      raise flags.Error('--workdir is required')
    checks.positive_int('--workers', _WORKERS.value)
    checks.positive_int('--heartbeat_s', _HEARTBEAT.value)
    if _STALE.value <= _HEARTBEAT.value:
      raise flags.Error(f'--stale_after={_STALE.value}: expected more than --heartbeat_s='
                        f'{_HEARTBEAT.value} (a live worker beats within that time)')
  except Exception as e:  # pylint: disable=broad-except  (bad flags or config: one line)
    checks.fail(e)

  from experiments.sweeps import engine  # pylint: disable=g-import-not-at-top
  from experiments.sweeps import report  # pylint: disable=g-import-not-at-top
  from experiments.sweeps import spec as spec_lib  # pylint: disable=g-import-not-at-top
  from experiments.sweeps import storage  # pylint: disable=g-import-not-at-top

  path, arg = config_cli.split_source(parsed.source)
  try:
    spec = spec_lib.parse_sweep(config, num_trials=_NUM_TRIALS.value)
    overrides = parsed.overrides
    if _STORAGE.value:  # check a remote storage before creating anything
      storage.open_storage(_STORAGE.value)
    sweep = engine.Sweep(spec, workdir=_WORKDIR.value, config_path=path, config_arg=arg,
                         cli_overrides=overrides, storage_url=_STORAGE.value,
                         study_name=_STUDY.value, trainer=_TRAINER.value,
                         stale_after=_STALE.value, heartbeat_s=_HEARTBEAT.value)
    sweep.open()
  except ValueError as e:
    checks.fail(e)

  print(f'sweep: {spec.method}, {spec.total_trials} trials in {len(spec.stages)} stage(s), '
        f'{spec.direction} {spec.metric}; storage {sweep.storage_url}', flush=True)
  results = sweep.run(workers=_WORKERS.value)
  print(report.write_report(spec, results, sweep.workdir), flush=True)
  print(f'report: {os.path.join(sweep.workdir, "sweep.csv")}, '
        f'{os.path.join(sweep.workdir, "sweep.png")}', flush=True)
  return 0


if __name__ == '__main__':
  sys.exit(main(sys.argv))
