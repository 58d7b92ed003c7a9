"""The trainer: one linear, readable training loop (big_vision style).

    setup = train.build(config)           # validates; builds data info, model, task, optimizer
    train.train_and_evaluate(setup, workdir)

Sections below follow the order a run goes through: input, model, update,
checkpoint, evals, loop.

The update is one pure `train_step(state, batch, rng)`, `pmap`'d once over
the local devices (axis name `batch`) with the state donated. Its objective
is the (masked) mean data loss over the global batch plus the penalty,

    J(θ) = (1/N) Σ_i m_i ℓ(f_θ(x_i), y_i) + λ R(θ),     N = Σ_i m_i,

where each device computes its share D·Σ_{i∈device} m_i ℓ_i / N, so that
`lax.pmean` of the per-device gradients is exactly ∇J (with equal shards and
no padding the share is the plain per-device mean). Gradient accumulation
splits each device's shard into `accum_steps` micro-batches whose shares add
up to the same J, so the result does not depend on `accum_steps` or on the
device count (up to float summation order). Dropout keys are
fold_in(fold_in(fold_in(key, step), device), micro-batch): a pure function
of the seed and the step, which is what makes a resumed run bit-identical.
"""
from __future__ import annotations

import dataclasses
import inspect
import math
import os
import re
import time
from typing import Any, Callable, Mapping, NamedTuple, Optional, Sequence

import flax.jax_utils
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

import optim
import vision
from experiments import checkpointing
from experiments import data as data_lib
from experiments import metrics as metrics_lib
from experiments import tasks as tasks_lib

AXIS = 'batch'
DTYPES = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16}
REGULARIZERS = ('none', 'l2', 'l1', 'elastic_net')
_FAST_COMPILE = {'xla_backend_optimization_level': 0, 'xla_llvm_disable_expensive_passes': True}


class NonFiniteError(RuntimeError):
  """The loss or the gradients became NaN/Inf; the run stopped."""


class TrainState(NamedTuple):
  """Everything that changes during training (and goes into a checkpoint)."""
  step: Any          # int32 scalar: updates done so far
  params: Any        # float32 parameters
  opt_state: Any     # optimizer state (float32)
  model_state: Any   # non-trained collections, e.g. {'batch_stats': ...}; {} if none


@dataclasses.dataclass
class Setup:
  """A validated experiment: every object the loop needs, nothing run yet."""
  config: ml_collections.ConfigDict
  info: data_lib.DatasetInfo
  module: Any
  task: Any
  tx: optax.GradientTransformation
  schedule: Callable[[Any], Any]
  penalty: Optional[Callable[[Any], jax.Array]]
  total_steps: int
  global_batch: int
  num_devices: int
  num_local_devices: int
  variable_shapes: Any
  devices: list[Any]
  eval_batch: int


# ---------------------------------------------------------------------------
# Setup: durations, schedule, optimizer, penalty (all from the config).
# ---------------------------------------------------------------------------

def _steps(config: ml_collections.ConfigDict, num_train: int, global_batch: int,
           steps_key: str, epochs_key: str, container=None) -> Optional[int]:
  """A duration given in steps or epochs (exactly one of them), in steps."""
  container = container if container is not None else config
  steps, epochs = container.get(steps_key) or None, container.get(epochs_key) or None
  if steps is not None and epochs is not None:
    raise ValueError(f'{steps_key}={steps!r} and {epochs_key}={epochs!r} are both set; '
                     f'give the duration in one of them (the other None or 0)')
  if epochs is not None:
    return int(math.ceil(epochs * num_train / global_batch))
  return None if steps is None else int(steps)


def total_steps_of(config: ml_collections.ConfigDict, num_train: int) -> int:
  """config.total_steps, or config.total_epochs over the training split."""
  global_batch = num_train if config.full_batch else config.batch_size
  steps = _steps(config, num_train, global_batch, 'total_steps', 'total_epochs')
  if steps is None or steps < 1:
    raise ValueError(f'total_steps={config.get("total_steps")!r}, total_epochs='
                     f'{config.get("total_epochs")!r}; set one of them to a positive number')
  if config.get('total_steps') and config.total_steps < 0:
    raise ValueError(f'total_steps={config.total_steps!r}; must be positive')
  return steps


def make_schedule(config: ml_collections.ConfigDict, total_steps: int, num_train: int
                  ) -> Optional[Callable[[Any], Any]]:
  """The learning-rate schedule `step -> lr`: `optim.schedules.create` from config.schedule.

  config.schedule.name is one of `optim.schedules.NAMES` with peak
  optimizer.learning_rate, linear warmup from 0 over schedule.warmup_steps
  (or warmup_epochs), decaying over the remaining steps; every other
  schedule.* key goes to the schedule (end_value, boundaries, factor, ...).
  None when the optimizer takes no learning rate (learning_rate=None).
  """
  sched = config.schedule.to_dict()
  name = sched.pop('name')
  global_batch = num_train if config.full_batch else config.batch_size
  warmup = _steps(config, num_train, global_batch, 'warmup_steps', 'warmup_epochs',
                  container=config.schedule) or 0
  sched.pop('warmup_steps', None)
  sched.pop('warmup_epochs', None)
  lr = config.optimizer.learning_rate
  if lr is None:
    return None
  return optim.schedules.create(name, init_value=lr, total_steps=total_steps,
                                warmup_steps=warmup, **sched)


def make_optimizer(config: ml_collections.ConfigDict, schedule) -> optax.GradientTransformation:
  """optim.create(optimizer.name, learning_rate=schedule, **other optimizer keys), clipped.

  optimizer.lr_mult (optional, {pattern: m}) scales the learning rate of the
  matching parameters by m (`scale_lr_by_path`); optimizer.no_decay
  (optional, patterns) exempts the matching parameters from AdamW's weight
  decay (`no_decay_mask`).
  """
  hparams = config.optimizer.to_dict()
  name = hparams.pop('name')
  lr_mult = hparams.pop('lr_mult', None) or {}
  no_decay = hparams.pop('no_decay', None) or ()
  hparams.pop('learning_rate', None)
  if schedule is not None:
    hparams['learning_rate'] = schedule
  if no_decay:
    factory = optim.registry.optimizers().get(name)
    if factory is not None and 'mask' not in inspect.signature(factory).parameters:
      raise ValueError(f'optimizer.no_decay={list(no_decay)!r} needs an optimizer with a '
                       f'weight-decay mask (adamw), not optimizer.name={name!r}')
    if hparams.get('mask') is not None:
      raise ValueError('give optimizer.no_decay or optimizer.mask, not both')
    hparams['mask'] = no_decay_mask(no_decay)
  tx = optim.create(name, **hparams)
  if lr_mult:
    if name in second_order_names():
      raise ValueError(f'optimizer.lr_mult={lr_mult!r} with optimizer.name={name!r}: a line '
                       'search or Newton step chooses its own step size; lr_mult needs a '
                       'first-order optimizer')
    tx = scale_lr_by_path(tx, lr_mult)
  if config.grad_clip_norm is not None:
    tx = optax.chain(optim.clip_by_global_norm(config.grad_clip_norm), tx)
  return tx


def _path_name(path: tuple) -> str:
  return '/'.join(str(getattr(k, 'key', getattr(k, 'name', getattr(k, 'idx', k))))
                  for k in path)


def lr_multipliers(params: Any, lr_mult: Mapping[str, float],
                   key: str = 'optimizer.lr_mult') -> Any:
  """The learning-rate factor of every leaf of `params` (a pytree of Python floats).

  A leaf's path is its keys joined by '/' ('decode_head/linear_c1/kernel');
  pattern p of `lr_mult` matches it when `re.search(p, path)` does, so a plain
  name matches as a substring, as mmseg's `paramwise_cfg.custom_keys` do. When
  several patterns match, the longest wins (mmseg's rule); unmatched leaves get 1.

  Raises:
    ValueError: a pattern is not a valid regular expression or matches no
      parameter (the message lists the top-level parameter names), or a factor
      is not a number ≥ 0; messages name the config `key` the patterns came from.
  """
  for pattern, m in lr_mult.items():
    if isinstance(m, bool) or not isinstance(m, (int, float)) or not m >= 0:
      raise ValueError(f'{key}[{pattern!r}]={m!r}; must be a number >= 0')
    try:
      re.compile(pattern)
    except re.error as e:
      raise ValueError(f'{key} pattern {pattern!r} is not a regular expression: {e}') from e
  leaves, treedef = jax.tree_util.tree_flatten_with_path(params)
  paths = [_path_name(p) for p, _ in leaves]
  unused = [p for p in lr_mult if not any(re.search(p, s) for s in paths)]
  if unused:
    top = sorted(params) if isinstance(params, Mapping) else sorted({s.split('/')[0]
                                                                    for s in paths})
    raise ValueError(f'{key} pattern(s) {unused} match no parameter; patterns are '
                     f"searched in paths like {paths[0] if paths else ''!r}; top-level "
                     f'parameter names: {", ".join(map(str, top))}')
  longest_first = sorted(lr_mult, key=len, reverse=True)
  factors = [float(next((lr_mult[p] for p in longest_first if re.search(p, s)), 1.0))
             for s in paths]
  return jax.tree_util.tree_unflatten(treedef, factors)


def no_decay_mask(patterns: Sequence[str]) -> Callable[[Any], Any]:
  """`params -> pytree of bools`: True (decayed) unless a pattern matches the leaf's path.

  Paths and matching as `lr_multipliers` ('backbone/block1_0/norm1/scale'
  matches 'backbone/.*norm'); a pattern matching no parameter is an error.
  This is mmseg's `paramwise_cfg.custom_keys={key: dict(decay_mult=0.)}`.
  """
  if isinstance(patterns, str) or not all(isinstance(p, str) for p in patterns):
    raise ValueError(f'optimizer.no_decay={patterns!r} must be a list of path patterns')
  patterns = tuple(patterns)

  def mask(params: Any) -> Any:
    factors = lr_multipliers(params, {p: 0.0 for p in patterns}, key='optimizer.no_decay')
    return jax.tree.map(lambda m: m != 0.0, factors)

  return mask


def scale_lr_by_path(tx: optax.GradientTransformation, lr_mult: Mapping[str, float]
                     ) -> optax.GradientTransformation:
  """`tx` with the final update of every leaf matching `lr_mult` multiplied by its factor m.

  Every first-order `optim.create` optimizer ends in `−lr·u` with no state
  depending on lr, so m·(−lr·u) is exactly that leaf trained with learning
  rate m·lr (at every step of the schedule), as a torch/mmseg parameter
  group with `lr_mult=m`; AdamW's decoupled decay −lr·λ·θ is scaled with it,
  as torch multiplies λ by the group's lr. Patterns are checked at `init`
  (see `lr_multipliers`).
  """
  lr_mult = dict(lr_mult)
  tx = optax.with_extra_args_support(tx)

  def init_fn(params):
    lr_multipliers(params, lr_mult)
    return tx.init(params)

  def update_fn(updates, state, params=None, **extra_args):
    updates, state = tx.update(updates, state, params, **extra_args)
    factors = lr_multipliers(updates, lr_mult)
    updates = jax.tree.map(lambda u, m: u if m == 1.0 else u * jnp.asarray(m, u.dtype),
                           updates, factors)
    return updates, state

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def _is_kernel(path: tuple, leaf: Any) -> bool:
  del leaf
  return getattr(path[-1], 'key', None) == 'kernel'


def make_penalty(config: ml_collections.ConfigDict) -> Optional[Callable[[Any], jax.Array]]:
  """λR(θ) from config.reg (optim.regularizers.penalty), or None when off.

  reg.kind: 'none' | 'l2' (Σ W²) | 'l1' (Σ |W|) | 'elastic_net' (Σ β W² + |W|);
  reg.strength: λ; reg.mask: 'kernels' (leaves named 'kernel': dense and conv
  weights, the classic choice for linear models and MLPs), 'weights' (every
  leaf with ndim ≥ 2) or 'all'; other reg.* keys (beta) go to the penalty.
  """
  reg = config.reg.to_dict()
  kind, strength = reg.pop('kind'), reg.pop('strength')
  mask = reg.pop('mask', 'kernels')
  if kind not in REGULARIZERS:
    raise ValueError(f'reg.kind={kind!r}; valid: {", ".join(REGULARIZERS)}')
  if mask not in ('kernels', 'weights', 'all'):
    raise ValueError(f"reg.mask={mask!r}; valid: 'kernels', 'weights', 'all'")
  if kind == 'none' or not strength:
    return None
  return optim.regularizers.penalty(kind, strength, mask=_is_kernel if mask == 'kernels'
                                    else mask, **reg)


# ---------------------------------------------------------------------------
# Model: overrides from the data, shapes, initialization.
# ---------------------------------------------------------------------------

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
    overrides['dtype'] = DTYPES[config.dtype]
  if config.get('sync_batch_norm', True) and 'bn_axis_name' in fields:
    overrides.setdefault('bn_axis_name', AXIS)  # SyncBN: statistics of the global batch
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


def _init_fn(module, image_shape, dtype):
  def init(rng):
    x = jnp.zeros((1, *image_shape), dtype)
    return module.init({'params': rng, 'dropout': rng}, x, train=False)
  return init


def init_state(setup: Setup, rng: jax.Array) -> TrainState:
  """Fresh parameters and optimizer state on the host (one copy, not replicated)."""
  init = jax.jit(_init_fn(setup.module, setup.info.image_shape, DTYPES[setup.config.dtype]))
  try:
    # Initialization runs once: a cheap compile beats fast code (~3x less wall time on CPU).
    variables = init.lower(rng).compile(_FAST_COMPILE)(rng)
  except Exception:  # pylint: disable=broad-except  (option unknown to this backend)
    variables = init(rng)
  variables = dict(variables)
  params = variables.pop('params')
  opt_state = jax.jit(setup.tx.init)(params)
  return jax.device_get(TrainState(np.int32(0), params, opt_state, variables))


# ---------------------------------------------------------------------------
# Update: the pure train step.
# ---------------------------------------------------------------------------

def make_train_step(setup: Setup) -> Callable[..., tuple[TrainState, dict[str, jax.Array]]]:
  """The pure `train_step(state, batch, rng) -> (state, metrics)`, to be pmap'd over AXIS."""
  config, module, task, tx = setup.config, setup.module, setup.task, setup.tx
  accum = int(config.accum_steps)
  dtype = DTYPES[config.dtype]
  train_mode = not config.full_batch  # full batch: no dropout, deterministic
  penalty = setup.penalty
  schedule = setup.schedule
  extra_args = isinstance(tx, optax.GradientTransformationExtraArgs)

  def micro_objective(params, model_state, images, labels, weights, rng):
    """This micro-batch's share of the data loss, its metrics and new model state."""
    variables = {'params': params, **model_state}
    kwargs = dict(train=train_mode, rngs={'dropout': rng})
    if model_state and train_mode:
      logits, new_state = module.apply(variables, images.astype(dtype), mutable=list(model_state),
                                       **kwargs)
      new_state = dict(new_state)
    else:
      logits, new_state = module.apply(variables, images.astype(dtype), **kwargs), model_state
    share = jnp.sum(task.losses(logits, labels) * weights)
    metrics = {k: jnp.sum(v * weights) for k, v in task.train_metrics(logits, labels).items()}
    return share, (metrics, new_state)

  # A second-order method's line search evaluates value_fn
  # inside a while loop, and a cross-device reduction in there has to meet on
  # every device each iteration (on CPU the collectives' rendezvous can stall).
  # The whole (small) batch is gathered onto every device once per step
  # instead, and each device computes the identical global-batch
  # objective with no collectives; D× redundant compute, exact and safe (these
  # methods are meant for full-batch training of small models).
  gather = extra_args and config.optimizer.name in second_order_names()

  def split(batch):
    """[b, ...] -> [accum, b/accum, ...] (padded with weight 0 when b % accum != 0)."""
    if gather:
      batch = jax.tree.map(lambda x: jax.lax.all_gather(x, AXIS, tiled=True), batch)
    images, labels = batch['image'], batch['label']
    mask = batch.get('mask')
    mask = jnp.ones(labels.shape[:1], jnp.float32) if mask is None else mask.astype(jnp.float32)
    if gather:
      weights = mask / jnp.sum(mask)
    else:
      # Global count N of real examples; each device's share is D·Σ m ℓ / N.
      weights = mask * jax.lax.psum(1, AXIS) / jax.lax.psum(jnp.sum(mask), AXIS)
    b = labels.shape[0]
    pad = -b % accum
    def reshape(x):
      if pad:
        x = jnp.pad(x, [(0, pad)] + [(0, 0)] * (x.ndim - 1))
      return x.reshape(accum, (b + pad) // accum, *x.shape[1:])
    return reshape(images), reshape(labels), reshape(weights)

  # XLA:CPU runs convolutions that sit in a loop body one to two orders of
  # magnitude slower than at top level (jax-ml/jax#12868; even a length-1
  # scan: a SegFormer-B0 step took 18 s instead of 0.6 s), so on CPU, and
  # whenever there is a single micro-batch, the micro-batches are a Python
  # loop (traced once each) rather than a lax.scan.
  unrolled = accum == 1 or not setup.devices or setup.devices[0].platform == 'cpu'

  def data_value_and_grad(params, model_state, micro, rng, with_grad=True):
    """Σ over micro-batches of the share (and its gradient), via lax.scan or unrolled."""
    fn = jax.value_and_grad(micro_objective, has_aux=True) if with_grad else micro_objective

    def body(carry, xs):
      total, grads, metrics, state = carry
      images, labels, weights, k = xs
      out = fn(params, state, images, labels, weights, jax.random.fold_in(rng, k))
      if with_grad:
        (share, (m, state)), g = out
        grads = jax.tree.map(jnp.add, grads, g)
      else:
        share, (m, state) = out
      metrics = jax.tree.map(jnp.add, metrics, m)
      return (total + share, grads, metrics, state), None

    zeros = jax.tree.map(jnp.zeros_like, params) if with_grad else None
    metric_zeros = {k: jnp.zeros((), jnp.float32) for k in _metric_names(task)}
    init = (jnp.zeros((), jnp.float32), zeros, metric_zeros, model_state)
    xs = (*micro, jnp.arange(accum))
    if unrolled:
      carry = init
      for k in range(accum):
        carry, _ = body(carry, jax.tree.map(lambda x, k=k: x[k], xs))
      return carry
    (total, grads, metrics, state), _ = jax.lax.scan(body, init, xs)
    return total, grads, metrics, state

  def train_step(state: TrainState, batch, rng):
    step_rng = jax.random.fold_in(rng, state.step)
    if not gather:  # gathered: every device computes the same thing, same key
      step_rng = jax.random.fold_in(step_rng, jax.lax.axis_index(AXIS))
    micro = split(batch)
    loss, grads, metrics, model_state = data_value_and_grad(
        state.params, state.model_state, micro, step_rng)
    if not gather:
      loss = jax.lax.pmean(loss, AXIS)
      grads = jax.lax.pmean(grads, AXIS)
      metrics = jax.lax.pmean(metrics, AXIS)
    model_state = jax.lax.pmean(model_state, AXIS)  # BatchNorm statistics agree on every device
    out = {'train/loss': loss, **{f'train/{k}': v for k, v in metrics.items()}}
    objective = loss
    if penalty is not None:
      reg, reg_grads = jax.value_and_grad(penalty)(state.params)
      grads = jax.tree.map(jnp.add, grads, reg_grads)
      objective = loss + reg
      out['train/penalty'] = reg
      out['train/objective'] = objective

    if extra_args:
      def value_fn(params):
        value = data_value_and_grad(params, state.model_state, micro, step_rng,
                                    with_grad=False)[0]
        if not gather:
          value = jax.lax.pmean(value, AXIS)
        return value + penalty(params) if penalty is not None else value
      updates, opt_state = tx.update(grads, state.opt_state, state.params, value=objective,
                                     grad=grads, value_fn=value_fn)
    else:
      updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)

    grad_norm = optax.global_norm(grads)
    out['grad_norm'] = grad_norm
    out['param_norm'] = optax.global_norm(params)
    if schedule is not None:
      out['lr'] = jnp.asarray(schedule(state.step), jnp.float32)
    out['finite'] = jnp.isfinite(objective) & jnp.isfinite(grad_norm)
    return TrainState(state.step + 1, params, opt_state, model_state), out

  return train_step


def second_order_names() -> set[str]:
  """Optimizer names whose update calls value_fn (line searches, Newton)."""
  from optim import second_order  # pylint: disable=g-import-not-at-top
  return set(getattr(second_order, 'OPTIMIZERS', {}))


def _metric_names(task) -> list[str]:
  logits = jnp.zeros((1, getattr(task, 'num_classes', 2)))
  return list(jax.eval_shape(lambda: task.train_metrics(logits, jnp.zeros((1,), jnp.int32))))


# ---------------------------------------------------------------------------
# Evals: every example of the eval split exactly once.
# ---------------------------------------------------------------------------

class EvalStep(NamedTuple):
  """An eval step in two pmapped halves, so the model compiles once per image shape.

  `forward(params, model_state, images) -> logits` (dense tasks: the task's
  whole-image or sliding-window `predict`); `sums(logits, batch) -> task
  sums`, psum'd over AXIS. Batches whose labels differ in shape (dense eval
  at the original label resolution) recompile only `sums`.
  """
  forward: Callable[..., jax.Array]
  sums: Callable[..., dict[str, jax.Array]]


def make_eval_fns(setup: Setup) -> EvalStep:
  """The pure halves of the eval step (see `EvalStep`); `pmap_eval_step` maps them."""
  module, task, dtype = setup.module, setup.task, DTYPES[setup.config.dtype]

  def forward(params, model_state, images):
    def apply(x):
      return module.apply({'params': params, **model_state}, x.astype(dtype), train=False)
    predict = getattr(task, 'predict', None)  # dense tasks: whole-image / sliding-window
    return predict(apply, images) if predict else apply(images)

  def sums(logits, batch):
    extras = {k: v for k, v in batch.items() if k not in ('image', 'label', 'mask')}
    return jax.lax.psum(task.eval_sums(logits, batch['label'], batch['mask'], **extras), AXIS)

  return EvalStep(forward, sums)


def pmap_eval_step(setup: Setup) -> EvalStep:
  fns = make_eval_fns(setup)
  return EvalStep(jax.pmap(fns.forward, axis_name=AXIS, devices=setup.devices),
                  jax.pmap(fns.sums, axis_name=AXIS, devices=setup.devices))


def evaluate(eval_step: EvalStep, params, model_state, eval_batches, task, devices=None
             ) -> dict[str, float]:
  """Runs one pass over `eval_batches`; sums in float64 on the host."""
  sums = None
  for batch in data_lib.prefetch_to_device(iter(eval_batches), 2, devices):
    logits = eval_step.forward(params, model_state, batch['image'])
    rest = {k: v for k, v in batch.items() if k != 'image'}
    out = _unreplicate(eval_step.sums(logits, rest))
    out = jax.tree.map(lambda x: np.asarray(x, np.float64), out)
    sums = out if sums is None else jax.tree.map(np.add, sums, out)
  metrics = task.eval_metrics(sums)
  metrics['val/count'] = int(sums['count'])
  return metrics


# ---------------------------------------------------------------------------
# Build: validate the config and assemble the pieces (no side effects).
# ---------------------------------------------------------------------------

def _first_line(e: Exception) -> str:
  """The first line of an exception's message (its type name when empty)."""
  text = str(e).strip()
  return text.splitlines()[0] if text else type(e).__name__


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
  total = total_steps_of(config, info.num_train)
  overrides = model_overrides(config, info)
  module = vision.create_model(config.model.name, **overrides)
  task_options = config.get('task_options')  # optional task-specific knobs (segmentation)
  task = tasks_lib.create(config.task, num_classes=info.num_classes, loss=config.loss,
                          label_smoothing=config.label_smoothing,
                          **(task_options.to_dict() if task_options else {}))
  schedule = make_schedule(config, total, info.num_train)
  tx = make_optimizer(config, schedule)
  penalty = make_penalty(config)
  try:
    shapes = jax.eval_shape(_init_fn(module, info.image_shape, DTYPES[config.dtype]),
                            jax.random.PRNGKey(0))
  except Exception as e:  # pylint: disable=broad-except
    raise ValueError(f'model {config.model.name!r} cannot take {info.image_shape} images '
                     f'(data.image_size={config.data.image_size}): {_first_line(e)}') from e
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
                       f'{_first_line(e)}') from e
  if config.optimizer.get('lr_mult'):
    lr_multipliers(shapes['params'], config.optimizer.to_dict()['lr_mult'])  # match the model
  if config.optimizer.get('no_decay'):
    no_decay_mask(config.optimizer.to_dict()['no_decay'])(shapes['params'])
  if config.task == 'classification' and out.shape[-1] != info.num_classes:
    raise ValueError(f'model {config.model.name!r} outputs {out.shape[-1]} classes; the data '
                     f'has {info.num_classes} (set model.overrides.num_classes or drop it)')
  return Setup(config, info, module, task, tx, schedule, penalty, total, global_batch,
               num_devices, num_local, shapes, devices, eval_batch)


# ---------------------------------------------------------------------------
# Loop.
# ---------------------------------------------------------------------------

def _replicate(tree, devices):
  return flax.jax_utils.replicate(tree, devices)


def _unreplicate(tree):
  """Host copy of device 0's replica (no per-shape compiled slicing)."""
  def first(x):
    shard = np.asarray(x.addressable_shards[0].data)
    return shard[0] if shard.ndim == x.ndim else shard
  return jax.tree.map(first, tree)


def _every(step: int, every: Optional[int], total: int) -> bool:
  return step == total or bool(every) and step % every == 0


def train_and_evaluate(setup: Setup, workdir: str, *, progress_stream=None) -> dict[str, Any]:
  """Trains `setup` in `workdir` (resuming from its last checkpoint); returns the last record.

  Raises:
    NonFiniteError: the loss or the gradients became NaN/Inf.
  """
  config = setup.config
  is_writer = jax.process_index() == 0
  rng = jax.random.PRNGKey(config.seed)
  init_rng, train_rng = jax.random.split(rng)

  # Checkpoint: restore the latest, if any.
  ckpt = checkpointing.Checkpointer(workdir, keep=config.keep_checkpoints)
  state = init_state(setup, init_rng)
  start_step = ckpt.latest_step() or 0
  if start_step:
    state = ckpt.restore(start_step, state)
  last_good = ckpt.path(start_step) if start_step else None

  writer = metrics_lib.MetricWriter(workdir, enabled=is_writer, resume_step=start_step)
  kwargs = {} if progress_stream is None else {'stream': progress_stream}
  progress = metrics_lib.Progress(setup.total_steps, start_step, setup.global_batch,
                                  setup.num_devices, enabled=is_writer, **kwargs)
  if start_step:
    progress.message(f'Resuming from {ckpt.path(start_step)} (step {start_step}).')

  # Input.
  train_iter = data_lib.make_train_iterator(
      config.data, setup.global_batch, config.seed, start_step=start_step,
      num_local_devices=setup.num_local_devices, process_index=jax.process_index(),
      process_count=jax.process_count(), full_batch=config.full_batch)
  train_iter = data_lib.prefetch_to_device(train_iter, config.get('prefetch', 2), setup.devices)
  eval_batches = data_lib.make_eval_iterator(
      config.data, setup.eval_batch, setup.num_local_devices, jax.process_index(),
      jax.process_count())

  # Update and evals, pmap'd once.
  p_train_step = jax.pmap(make_train_step(setup), axis_name=AXIS, donate_argnums=(0,),
                          devices=setup.devices)
  p_eval_step = pmap_eval_step(setup)
  state = _replicate(state, setup.devices)
  rngs = _replicate(train_rng, setup.devices)

  record: dict[str, Any] = {}
  pending = None  # (step, metrics) of the previous step, checked one step late
  last_logged_train = None

  def check(step, m):
    if not bool(_unreplicate(m['finite'])):
      where = (f'the last good checkpoint is {last_good}' if last_good else
               'no checkpoint was written yet')
      raise NonFiniteError(f'loss or gradients are NaN/Inf at step {step}; stopped, '
                           f'{where}; metrics up to step {last_logged_train} are in '
                           f'{os.path.join(workdir, metrics_lib.METRICS_FILE)}')

  try:
    for step in range(start_step + 1, setup.total_steps + 1):
      batch = next(train_iter)
      state, m = p_train_step(state, batch, rngs)
      if pending is not None:
        check(*pending)  # the previous step is done (or nearly) by now: cheap sync
      pending = (step, m)
      if step == start_step + 1:
        jax.block_until_ready(m)
        progress.reset(step)  # exclude compilation from throughput

      do_log = _every(step, config.log_every, setup.total_steps)
      do_eval = _every(step, config.eval_every, setup.total_steps)
      do_ckpt = _every(step, config.checkpoint_every, setup.total_steps)
      if not (do_log or do_eval or do_ckpt):
        continue
      check(step, m)
      pending = None
      record = {}
      if do_log:
        host = _unreplicate(m)
        host.pop('finite')
        record.update({k: float(v) for k, v in host.items()})
        record.update(progress.measure(step))
        record['epoch'] = step * setup.global_batch / setup.info.num_train
        last_logged_train = step
      progress.pause()
      if do_eval:
        record.update(evaluate(p_eval_step, state.params, state.model_state, eval_batches,
                               setup.task, setup.devices))
      if do_ckpt:
        ckpt.save(step, _unreplicate(state))
        last_good = ckpt.path(step)
      if record:
        writer.write(step, record)
        progress.show(step, record)
      progress.resume()
    if pending is not None:
      check(*pending)
  finally:
    train_iter.close()  # stops and joins the prefetch thread before exit
    writer.close()
    ckpt.close()

  if not record:  # resumed a finished run: report its last record
    logged = metrics_lib.read_jsonl(os.path.join(workdir, metrics_lib.METRICS_FILE))
    record = logged[-1] if logged else {}
  if is_writer:
    from experiments import plots  # pylint: disable=g-import-not-at-top  (matplotlib is slow)
    records = metrics_lib.read_jsonl(os.path.join(workdir, metrics_lib.METRICS_FILE))
    plots.training_curves(records, os.path.join(workdir, 'curves.png'),
                          title=f'{config.model.name} on {config.data.name}')
  return record
