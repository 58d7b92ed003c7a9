r"""Command line: train a config into a workdir (resuming it if it exists).

    python -m experiments.main                     # default config, fresh ./runs/default_<time>
    python -m experiments.main --config=experiments/configs/default.py --workdir=/tmp/run
    python -m experiments.main --config=experiments/configs/digits_baselines.py:model=mlp2 \
        --workdir=/tmp/mlp --config.optimizer.learning_rate=0.05

Every `--config.key=value` overrides a key of the config (an unknown key is
an error). Rerunning the same command on an existing workdir resumes from
its last checkpoint; a workdir holding a different config is refused.

Exit status: 0 done; 2 bad command line or config (one line on stderr,
nothing written), a workdir another live run holds, or a workdir whose
checkpoints are all damaged; 1 the run stopped (NaN/Inf loss or eval metric,
with the step and the last good checkpoint named); 75 preempted (SIGTERM or
SIGINT: the step reached was saved; rerun the same command to resume).
"""
from __future__ import annotations

if __name__ == '__main__':
  from experiments import malloc_tuning  # first: it may re-execute the process
  malloc_tuning.reexec_with_malloc_tunables()

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
from ml_collections import config_flags  # noqa: E402

DEFAULT_CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'configs',
                              'default.py')


def parse_flags(argv: list[str]) -> tuple[ml_collections.ConfigDict, Optional[str], str]:
  """(config, workdir, config path) from the command line, in a fresh FlagValues.

  config_flags loads the config file (and applies `--config.*` overrides) while
  the flag is being defined as well as when parsing, so both happen here.
  """
  fv = flags.FlagValues()
  saved, sys.argv = sys.argv, list(argv)  # config_flags reads the overrides from sys.argv
  try:
    config_flag = config_flags.DEFINE_config_file(
        'config', DEFAULT_CONFIG, 'Experiment config file, optionally `path.py:arg`.',
        flag_values=fv, lock_config=True)
    workdir = flags.DEFINE_string(
        'workdir', None, 'Output directory (created; resumed if it holds the same config). '
        'Default: ./runs/<config>_<UTC time>.', flag_values=fv)
    fv(argv)
  finally:
    sys.argv = saved
  return config_flag.value, workdir.value, config_flags.get_config_filename(fv['config'])


def _one_line(e: BaseException) -> str:
  text = str(e).replace('\\n', ' ').replace("\\'", "'")
  text = ' '.join(text.split())
  return text or type(e).__name__


def fail(message: str, status: int = 2) -> None:
  print(f'error: {message}', file=sys.stderr, flush=True)
  sys.exit(status)


def default_workdir(config_path: str) -> str:
  name = os.path.splitext(os.path.basename(config_path.split(':')[0]))[0]
  return os.path.join('runs', f'{name}_{time.strftime("%Y%m%d-%H%M%S", time.gmtime())}')


def main(argv: list[str]) -> int:
  try:
    config, workdir, config_path = parse_flags(argv)
  except flags.Error as e:
    fail(_one_line(e))
  except (KeyError, AttributeError) as e:  # --config.<key> that the config does not have
    fail(f'unknown config key in the --config.* overrides: {_one_line(e)}')
  except Exception as e:  # pylint: disable=broad-except  (unknown key, config that cannot load)
    fail(f'bad --config: {_one_line(e)}')

  import jax  # pylint: disable=g-import-not-at-top  (after the flags: faster --help)
  if config.get('distributed'):
    jax.distributed.initialize()

  from experiments import checkpointing  # pylint: disable=g-import-not-at-top
  from experiments import config_validation  # pylint: disable=g-import-not-at-top
  from experiments import preemption  # pylint: disable=g-import-not-at-top
  from experiments import workdir_lock  # pylint: disable=g-import-not-at-top
  from experiments import train  # pylint: disable=g-import-not-at-top

  try:
    setup = train.build(config)
    workdir = workdir or default_workdir(config_path)
    resume = config_validation.check_workdir(workdir, config)
  except Exception as e:  # pylint: disable=broad-except  (any bad config: one line, exit 2)
    fail(_one_line(e))

  if jax.process_index() == 0:
    os.makedirs(workdir, exist_ok=True)
    if not resume:
      config_validation.write_config(workdir, config)
    print(f'workdir: {workdir}  ({setup.total_steps} steps, global batch {setup.global_batch}, '
          f'{setup.num_devices} device(s))', flush=True)
  start = time.time()
  try:
    record = train.train_and_evaluate(setup, workdir)
  except train.NonFiniteError as e:
    fail(str(e), status=1)
  except train.Preempted as e:
    fail(f'preempted: {e}', status=preemption.EXIT_PREEMPTED)
  except (workdir_lock.WorkdirBusyError, checkpointing.DamagedCheckpointError) as e:
    fail(_one_line(e))
  if jax.process_index() == 0:
    shown = ', '.join(f'{k}={v:.4f}' for k, v in record.items()
                      if k.startswith('val/') and isinstance(v, float))
    print(f'done in {time.time() - start:.1f}s: {shown}; curves at '
          f'{os.path.join(workdir, "curves.png")}', flush=True)
  return 0


if __name__ == '__main__':
  sys.exit(main(sys.argv))
