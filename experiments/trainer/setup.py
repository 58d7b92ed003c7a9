"""Build: validate the config and assemble the pieces (no side effects), and initialise.

    setup = build(config)           # data info, model, task, optimizer; nothing run
    state = init_state(setup, rng)  # fresh (or `init_from`) parameters, optimizer state

With `config.init_from.path` set, `build` reads and fits the checkpoint once
(`experiments.init_from.load`) and keeps the host variables in
`Setup.initial_variables`: a checkpoint that does not fit is a ValueError
before anything is written, and `init_state` starts from them (the
optimizer state is initialised from the loaded parameters).
`total_steps=0` with `init_from` is an evaluation-only run.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Optional

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from experiments import checks
from experiments import data as data_lib
from experiments import early_stopping
from experiments import init_from as init_from_lib
from experiments import mixing
from experiments import tasks as tasks_lib
from experiments import weight_averaging
from experiments.trainer import durations
from experiments.trainer import optimizer as optimizer_lib
from experiments.trainer import parallel
from experiments.trainer.state import AXIS
from experiments.trainer.state import dtype_of
from experiments.trainer.state import Setup
from experiments.trainer.state import TrainState
import vision

_FAST_COMPILE = {'xla_backend_optimization_level': 0, 'xla_llvm_disable_expensive_passes': True}


def model_overrides(config: ml_collections.ConfigDict, info: data_lib.DatasetInfo
                    ) -> dict[str, Any]:
  """config.model.overrides, with num_classes / in_chans / img_size from the data when absent."""
  entry = vision.get_model_def(config.model.name)
  fields = {f.name for f in dataclasses.fields(entry.cls)}
  overrides = dict(config.model.get('overrides', {}) or {})
  h, w, c = info.image_shape
  for key, value in (('num_classes', info.num_classes), ('in_chans', c), ('img_size', h)):
    if key in fields and key not in overrides:
      overrides[key] = value
  if config.dtype != 'float32' and 'dtype' in fields:
    overrides['dtype'] = dtype_of(config.dtype)
  # SyncBN: statistics of the global batch (under jit the batch is one global array already).
  if (config.get('sync_batch_norm', True) and 'bn_axis_name' in fields
      and config.get('parallelism', 'pmap') == 'pmap'):
    overrides.setdefault('bn_axis_name', AXIS)
  if config.full_batch and 'drop_rate' in fields:
    overrides.setdefault('drop_rate', 0.0)  # full batch is deterministic
  if config.full_batch and 'drop_path_rate' in fields:
    overrides.setdefault('drop_path_rate', 0.0)
  img = overrides.get('img_size')
  if img is not None:
    img = (img, img) if isinstance(img, int) else tuple(img)
    if img != (h, w):
      raise ValueError(f'model.overrides.img_size={overrides["img_size"]!r} does not match '
                       f'the data (data.image_size={config.data.image_size}, images {h}x{w}); '
                       'drop the override or make them equal')
  return overrides


def init_fn(module, image_shape, dtype):
  """rng -> the module's variables for one image of `image_shape`."""
  def init(rng):
    x = jnp.zeros((1, *image_shape), dtype)
    return module.init({'params': rng, 'dropout': rng}, x, train=False)
  return init


def init_rng(config: ml_collections.ConfigDict) -> jax.Array:
  """The key the run's parameters are initialised from (the loop trains with the other half)."""
  return jax.random.split(jax.random.PRNGKey(config.seed))[0]


def fresh_variables(module, image_shape, dtype, rng: jax.Array) -> dict:
  """The module's initial variables for `rng`, on the host."""
  init = jax.jit(init_fn(module, image_shape, dtype))
  try:
    # Initialization runs once: a cheap compile beats fast code (~3x less wall time on CPU).
    variables = init.lower(rng).compile(_FAST_COMPILE)(rng)
  except Exception:  # pylint: disable=broad-except  (option unknown to this backend)
    variables = init(rng)
  return jax.device_get(dict(variables))


def init_state(setup: Setup, rng: jax.Array) -> TrainState:
  """Initial parameters and optimizer state on the host (one copy, not replicated).

  The parameters are `setup.initial_variables` when the run starts from a
  checkpoint (`init_from`), else a fresh initialisation from `rng`.
  """
  if setup.initial_variables is not None:
    variables = dict(setup.initial_variables)
  else:
    variables = fresh_variables(setup.module, setup.info.image_shape,
                                dtype_of(setup.config.dtype), rng)
  params = variables.pop('params')
  opt_state = jax.jit(setup.tx.init)(params)
  return jax.device_get(TrainState(np.int32(0), params, opt_state, variables))


def _check_least_squares(config: ml_collections.ConfigDict, task: Any) -> None:
  """A least-squares optimizer needs a sum-of-squares objective over the full batch."""
  name = config.optimizer.name
  if not config.full_batch:
    raise ValueError(f'optimizer.name={name!r} is a least-squares method: it needs the whole '
                     'objective at every step, set full_batch=True')
  if not hasattr(task, 'residuals') or config.loss != 'l2':
    raise ValueError(f'optimizer.name={name!r} minimises ½‖r‖²: it needs task=classification '
                     f'with loss=l2 (a sum of squares), not task={config.task!r}, '
                     f'loss={config.loss!r}')
  optimizer_lib.make_penalty_residuals(config)  # only an L2 penalty is a sum of squares


def _check_recipes(config: ml_collections.ConfigDict, info: data_lib.DatasetInfo,
                   global_batch: int) -> None:
  """The `mixup`, `ema`, `polyak` and `early_stopping` sections (absent sections are off)."""
  mix = mixing.from_experiment(config, info.num_classes)
  if mix is not None and global_batch % 2:
    raise ValueError(f'mixup/cutmix pair example i with B-1-i; batch_size={global_batch} must '
                     'be even')
  weight_averaging.transforms(config)  # the optimizer chains them; checked here by name
  cfg = config.get('early_stopping')
  rule = early_stopping.EarlyStopping.from_config(cfg) if cfg is not None else None
  if rule is None:
    return
  averages = [weight_averaging.PREFIXES['params']]
  if config.get('ema') is not None and config.ema.get('decay') is not None:
    averages.append(weight_averaging.PREFIXES['ema'])
  if config.get('polyak') is not None and config.polyak.get('start_step') is not None:
    averages.append(weight_averaging.PREFIXES['polyak'])
  prefix = rule.metric.partition('/')[0]
  if prefix not in averages or '/' not in rule.metric:
    raise ValueError(f'early_stopping.metric={rule.metric!r}; must be an eval metric of the '
                     f'weights this run evaluates: {" | ".join(p + "/<name>" for p in averages)} '
                     "(e.g. 'val/accuracy'; 'val_ema/...' needs ema.decay)")
  if config.eval_every == 0:
    raise ValueError('early_stopping.metric is set but eval_every=0 (one eval at the end); '
                     'set eval_every to the evaluation interval in steps')


def build(config: ml_collections.ConfigDict, devices: Optional[list[Any]] = None) -> Setup:
  """Checks `config` against the data, model and optimizer; raises ValueError when it cannot run.

  `devices`: the local devices to train on (default: all of them); a subset
  runs the same program on fewer devices (tests compare 1 against 8).

  Nothing is written and nothing is compiled: the model is traced with
  `jax.eval_shape` so a shape mismatch (image size vs. patch size, …) shows
  up here rather than in the middle of a run.
  """
  from experiments import config_validation  # pylint: disable=g-import-not-at-top
  config_validation.check_schema(config)
  info = data_lib.get_info(config.data)
  devices = list(devices or jax.local_devices())
  num_local = len(devices)
  num_devices = num_local * jax.process_count()
  if config.full_batch:
    global_batch = info.num_train
  else:
    global_batch = config.batch_size
    if global_batch % (num_devices * config.accum_steps):
      raise ValueError(
          f'batch_size={global_batch} is not divisible by the {num_devices} device(s) × '
          f'accum_steps={config.accum_steps}; use a multiple of '
          f'{num_devices * config.accum_steps}')
  eval_batch = config.get('eval_batch_size') or config.batch_size
  if eval_batch % num_devices:
    raise ValueError(f'eval_batch_size={eval_batch} is not divisible by the {num_devices} '
                     f'device(s); use a multiple of {num_devices}')
  _check_recipes(config, info, global_batch)
  evaluation_only = _evaluation_only(config)
  total = 0 if evaluation_only else durations.total_steps_of(config, info.num_train)
  overrides = model_overrides(config, info)
  module = vision.create_model(config.model.name, **overrides)
  task_options = config.get('task_options')  # optional task-specific knobs (segmentation)
  task = tasks_lib.create(config.task, num_classes=info.num_classes, loss=config.loss,
                          label_smoothing=config.label_smoothing,
                          **(task_options.to_dict() if task_options else {}))
  if evaluation_only:  # never steps: the optimizer is built at its constant peak rate
    lr = config.optimizer.get('learning_rate')
    schedule = None if lr is None else (lambda count, lr=lr: jnp.full((), lr, jnp.float32))
  else:
    schedule = optimizer_lib.make_schedule(config, total, info.num_train)
  tx = optimizer_lib.make_optimizer(config, schedule)
  penalty = optimizer_lib.make_penalty(config)
  if optimizer_lib.needs_residuals(config):
    _check_least_squares(config, task)
  parallel.check(config)
  dtype = dtype_of(config.dtype)
  try:
    shapes = jax.eval_shape(init_fn(module, info.image_shape, dtype), jax.random.PRNGKey(0))
  except Exception as e:  # pylint: disable=broad-except
    raise ValueError(f'model {config.model.name!r} cannot take {info.image_shape} images '
                     f'(data.image_size={config.data.image_size}): {checks.first_line(e)}') from e
  out = jax.eval_shape(lambda v: module.apply(v, jnp.zeros((1, *info.image_shape)), train=False),
                       shapes)
  for shape in data_lib.eval_image_shapes(config.data):
    if tuple(shape) == tuple(info.image_shape):
      continue
    try:
      jax.eval_shape(lambda v, s=shape: module.apply(v, jnp.zeros((1, *s)), train=False), shapes)
    except Exception as e:  # pylint: disable=broad-except
      raise ValueError(f'model {config.model.name!r} cannot evaluate {tuple(shape)} images '
                       '(data.seg.eval_size / data.seg.eval_scale canvases): '
                       f'{checks.first_line(e)}') from e
  optimizer_lib.check_policy(config, shapes['params'])  # the patterns match this model
  model_state = {k: v for k, v in shapes.items() if k != 'params'}
  frozen_state = optimizer_lib.frozen_state_mask(config, shapes['params'], model_state)
  if config.task == 'classification' and out.shape[-1] != info.num_classes:
    raise ValueError(f'model {config.model.name!r} outputs {out.shape[-1]} classes; the data '
                     f'has {info.num_classes} (set model.overrides.num_classes or drop it)')
  initial = None
  if _init_from_path(config):
    initial = load_initial_variables(config, module, info.image_shape, dtype)
  return Setup(config, info, module, task, tx, schedule, penalty, total, global_batch,
               num_devices, num_local, shapes, devices, eval_batch, frozen_state, initial)


def _init_from_path(config: ml_collections.ConfigDict) -> str:
  """config.init_from.path ('' when absent or off), after validating the block."""
  block = config.get('init_from')
  if block is None:
    return ''
  init_from_lib.validate(block)
  return str(block.get('path', '') or '')


def _evaluation_only(config: ml_collections.ConfigDict) -> bool:
  """total_steps=0 (and no total_epochs) with init_from: evaluate the loaded weights."""
  if config.get('total_steps') != 0 or config.get('total_epochs'):
    return False
  if not _init_from_path(config):
    raise ValueError('total_steps=0 is an evaluation-only run and needs init_from.path (the '
                     'weights to evaluate); set total_steps > 0 to train')
  return True


def load_initial_variables(config: ml_collections.ConfigDict, module, image_shape, dtype
                           ) -> dict:
  """The run's initial variables from `config.init_from` (fresh ones fill the rest).

  The fresh initialisation uses the run's own key (`init_rng`), so entries the
  checkpoint does not supply (a re-initialised head, `dont_load` paths, a new
  decoder) are exactly those of a run from scratch.
  """
  fresh = fresh_variables(module, image_shape, dtype, init_rng(config))
  try:
    return init_from_lib.load(config.init_from, module, fresh)
  except ValueError as e:
    line = checks.first_line(e)
    if config.init_from.path in line:
      raise
    raise ValueError(f'init_from.path={config.init_from.path!r}: {line}') from e
