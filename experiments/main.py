r"""Command line: train a config into a workdir (resuming it if it exists).

    python -m experiments.main                     # default config, fresh ./runs/default_<time>
    python -m experiments.main --config=experiments/configs/default.py --workdir=/tmp/run
    python -m experiments.main --config=experiments/configs/digits_baselines.py:model=mlp2 \
        --workdir=/tmp/mlp --config.optimizer.learning_rate=0.05

Every `--config.key=value` overrides a key of the config, type-checked. Keys
are those the config file lists plus every constructor field of the model
(`--config.model.overrides.<field>`), every hyper-parameter of the optimizer
(`--config.optimizer.<name>`) and every keyword of the schedule, for the
names the command line gives (`--config.model.name=...` exposes that model's
fields); an unknown key exits 2 listing the valid ones (docs/config.md).
Rerunning the same command on an existing workdir resumes from its last
checkpoint; a workdir holding a different config is refused.

`--help` lists every key of the config given (with --config=...), unset knobs
with their defaults.

Multi-process (one process per host, the same command on each, a shared
--workdir; docs/multihost.md):
  --coordinator_address=HOST:PORT  process 0's address (it serves the coordinator there)
  --num_processes=N --process_id=I  this process among N (I in [0, N)); all three or none
  --local_device_ids=0,1,...        the devices this process drives (default: all)
With none of them and --config.distributed=True, JAX reads the cluster from
Slurm / Open MPI / Cloud TPU. Each process reads only its slice of every
global batch; process 0 alone writes metrics, events, plots and config;
checkpoints are saved and restored by all processes together.

Exit status: 0 done; 2 bad command line or config (one line on stderr,
nothing written), a workdir another live run holds, or a workdir whose
checkpoints are all damaged; 1 the run stopped (NaN/Inf loss or eval metric,
with the step and the last good checkpoint named); 75 preempted (SIGTERM or
SIGINT: the step reached was saved; rerun the same command to resume).
"""
from __future__ import annotations

import os
import sys
import time
from typing import Optional

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
# TensorFlow (TFDS input) otherwise logs a oneDNN notice to stderr at import;
# oneDNN's reordered float math buys nothing for input decoding.
os.environ.setdefault('TF_ENABLE_ONEDNN_OPTS', '0')

from absl import flags  # noqa: E402
import ml_collections  # noqa: E402

from experiments import checks  # noqa: E402
from experiments import config_cli  # noqa: E402
from experiments import config_schema  # noqa: E402
from experiments import config_validation  # noqa: E402
from experiments import distributed  # noqa: E402

DEFAULT_CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'configs',
                              'default.py')


def parse_flags(argv: list[str]) -> tuple[ml_collections.ConfigDict, Optional[str], str,
                                           distributed.Launch]:
  """(config, workdir, config source, launch flags) from the command line, in a fresh FlagValues.

  The config is completed (every knob of its model, optimizer and schedule,
  experiments/config_schema.py) and has the `--config.*` overrides applied.
  """
  parsed = config_cli.parse(argv, default=DEFAULT_CONFIG)
  if any(a in ('-h', '--help', '-help', '--helpfull') for a in parsed.rest):
    print(f'{__doc__}\nKeys of --config={parsed.source} (--config.<key>=value):\n'
          f'{config_schema.describe(parsed.config)}')
    sys.exit(0)
  fv = flags.FlagValues()
  workdir = flags.DEFINE_string(
      'workdir', None, 'Output directory (created; resumed if it holds the same config). '
      'Default: ./runs/<config>_<UTC time>.', flag_values=fv)
  launch = distributed.define_flags(fv)
  fv(parsed.rest)
  return parsed.config, workdir.value, parsed.source, launch()


def default_workdir(config_path: str) -> str:
  name = os.path.splitext(os.path.basename(config_cli.split_source(config_path)[0]))[0]
  return os.path.join('runs', f'{name}_{time.strftime("%Y%m%d-%H%M%S", time.gmtime())}')


def prepare(argv: list[str]) -> tuple[ml_collections.ConfigDict, ml_collections.ConfigDict,
                                      str, bool, distributed.Launch]:
  """(config to save, config to build, workdir, resume?, launch flags) from the command line.

  Every check that needs neither data nor devices runs here: the config's
  keys and value domains, the launch flags and the workdir, so a bad input
  writes nothing.
  """
  config, workdir, source, launch = parse_flags(argv)
  saved = config_schema.settle(config)
  config_validation.check_schema(saved)
  built = config_schema.scale_learning_rate(saved)
  workdir = workdir or default_workdir(source)
  config_validation.check_workdir_usable(workdir)
  resume = config_validation.check_workdir(workdir, saved)
  return saved, built, workdir, resume, launch


def main(argv: list[str]) -> int:
  try:
    saved, config, workdir, resume, launch = prepare(argv)
  except Exception as e:  # pylint: disable=broad-except  (any bad input: one line, exit 2)
    checks.fail(e)

  import jax  # pylint: disable=g-import-not-at-top  (after the checks: a bad input fails fast)
  if distributed.wanted(launch, config.get('distributed')):
    try:
      distributed.initialize(launch)
    except RuntimeError as e:
      checks.fail(e)

  from experiments import checkpointing  # pylint: disable=g-import-not-at-top
  from experiments import preemption  # pylint: disable=g-import-not-at-top
  from experiments import workdir_lock  # pylint: disable=g-import-not-at-top
  from experiments import workdir_paths  # pylint: disable=g-import-not-at-top
  from experiments import train  # pylint: disable=g-import-not-at-top

  try:
    setup = train.build(config)
  except Exception as e:  # pylint: disable=broad-except  (any bad config: one line, exit 2)
    checks.fail(e)

  if jax.process_index() == 0:
    workdir_paths.path(workdir).mkdir(parents=True, exist_ok=True)
    if not resume:
      config_validation.write_config(workdir, saved)
    print(f'workdir: {workdir}  ({setup.total_steps} steps, global batch {setup.global_batch}, '
          f'{setup.num_devices} device(s))', flush=True)
  start = time.time()
  try:
    record = train.train_and_evaluate(setup, workdir)
  except train.NonFiniteError as e:
    checks.fail(str(e), status=1)
  except train.Preempted as e:
    checks.fail(f'preempted: {e}', status=preemption.EXIT_PREEMPTED)
  except (workdir_lock.WorkdirBusyError, checkpointing.DamagedCheckpointError) as e:
    checks.fail(e)
  if jax.process_index() == 0:
    shown = ', '.join(f'{k}={v:.4f}' for k, v in record.items()
                      if k.startswith('val/') and isinstance(v, float))
    print(f'done in {time.time() - start:.1f}s: {shown}; curves at '
          f'{workdir_paths.path(workdir) / "curves.png"}', flush=True)
  return 0


if __name__ == '__main__':
  sys.exit(main(sys.argv))
