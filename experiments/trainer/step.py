"""The update: one pure `train_step(state, batch, rng)`, pmap'd or jit'd over the devices.

Its objective is the (masked) mean data loss over the global batch plus the
penalty,

    J(θ) = (1/N) Σ_i m_i ℓ(f_θ(x_i), y_i) + λ R(θ),     N = Σ_i m_i,

where each device computes its share D·Σ_{i∈device} m_i ℓ_i / N, so that
`lax.pmean` of the per-device gradients is exactly ∇J (with equal shards and
no padding the share is the plain per-device mean). Gradient accumulation
splits each device's shard into `accum_steps` micro-batches whose shares add
up to the same J, so the result does not depend on `accum_steps` or on the
device count (up to float summation order). Dropout keys are
fold_in(fold_in(fold_in(key, step), device), micro-batch): a pure function
of the seed and the step, which is what makes a resumed run bit-identical.

Mixup/CutMix (`config.mixup`, experiments/mixing.py) runs first, on each
device's whole shard before the micro-batch split, with one key
fold_in(fold_in(key, step), MIX_TAG) shared by all devices: the mixed images
and soft targets t_i (label smoothing folded in) depend only on the global
batch, not on the device count or `accum_steps`. The loss then takes the
soft targets (ℓ = -Σ_k t_ik log softmax(s_i)_k for softmax_xent) and train
accuracy compares argmax s_i with argmax t_i.

Second-order methods get the objective itself: `value_fn` (line searches,
Newton) or, for least-squares methods on J = ½‖r‖² (loss l2, full batch),
`residual_fn` with rows √(m_i/N)·(f_θ(x_i) − t_i) and the penalty's √(2λ)·W.

Under `jax.jit` (`axis=None`, config.parallelism 'jit' or 'fsdp') the step
sees the global batch as one array sharded over the mesh: the share is
Σ m ℓ / N with N from the whole batch, no collectives are written (XLA adds
them), and BatchNorm statistics are those of the global micro-batch. The
micro-batches are laid out as pmap's (micro-batch k is the k-th slice of
every device's rows), so J, accumulation and SyncBN statistics agree with
pmap's. Dropout keys are fold_in(fold_in(key, step), micro-batch): no device
index, the mask is drawn for the global micro-batch, so a jit run does not
depend on the device count, and its dropout masks differ from pmap's.
"""
from __future__ import annotations

from typing import Callable, Optional

import jax
import jax.numpy as jnp
import optax

import optim
from experiments import mixing
from experiments.trainer import optimizer as optimizer_lib
from experiments.trainer.state import AXIS
from experiments.trainer.state import dtype_of
from experiments.trainer.state import Setup
from experiments.trainer.state import TrainState


def metric_names(task) -> list[str]:
  """The names of `task.train_metrics` (traced on a dummy batch of one)."""
  logits = jnp.zeros((1, getattr(task, 'num_classes', 2)))
  return list(jax.eval_shape(lambda: task.train_metrics(logits, jnp.zeros((1,), jnp.int32))))


# Folded into the per-step key for the mixing draws; far above any device index, which is
# what the dropout keys fold in at the same depth.
MIX_TAG = 0x6D6978


def make_train_step(setup: Setup, axis: Optional[str] = AXIS, shards: int = 1,
                    constrain: Optional[Callable[[jax.Array], jax.Array]] = None
                    ) -> Callable[..., tuple[TrainState, dict[str, jax.Array]]]:
  """The pure `train_step(state, batch, rng) -> (state, metrics)`.

  `axis`: the pmap axis the step is mapped over (AXIS), or None under
  `jax.jit`, where the batch is global and laid out as `shards` device rows;
  `constrain` then pins the sharding of the micro-batches `[accum, b/accum, ...]`.
  """
  config, module, task, tx = setup.config, setup.module, setup.task, setup.tx
  accum = int(config.accum_steps)
  dtype = dtype_of(config.dtype)
  train_mode = not config.full_batch  # full batch: no dropout, deterministic
  penalty = setup.penalty
  schedule = setup.schedule
  frozen_state = setup.frozen_state
  with_value_fn = optimizer_lib.needs_objective(config)
  with_residual_fn = optimizer_lib.needs_residuals(config)
  penalty_residuals = optimizer_lib.make_penalty_residuals(config) if with_residual_fn else None
  mix = mixing.from_experiment(config, setup.info.num_classes)

  def apply(params, model_state, images, rng):
    """Logits and the new model state (BatchNorm statistics in training mode)."""
    variables = {'params': params, **model_state}
    kwargs = dict(train=train_mode, rngs={'dropout': rng})
    if model_state and train_mode:
      logits, new_state = module.apply(variables, images.astype(dtype), mutable=list(model_state),
                                       **kwargs)
      return logits, dict(new_state)
    return module.apply(variables, images.astype(dtype), **kwargs), model_state

  def micro_objective(params, model_state, images, labels, weights, rng):
    """This micro-batch's share of the data loss, its metrics and new model state."""
    logits, new_state = apply(params, model_state, images, rng)
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
  gather = (with_value_fn or with_residual_fn) and axis is not None

  def split_rows(x):
    """Global [b, ...] as `shards` device rows -> [accum, b/accum, ...], pmap's micro-batches:
    micro-batch k holds the k-th slice of every row (rows padded when accum does not divide)."""
    rows = x.reshape(shards, x.shape[0] // shards, *x.shape[1:])
    pad = -rows.shape[1] % accum
    if pad:
      rows = jnp.pad(rows, [(0, 0), (0, pad)] + [(0, 0)] * (x.ndim - 1))
    rows = rows.reshape(shards, accum, rows.shape[1] // accum, *x.shape[1:])
    out = jnp.swapaxes(rows, 0, 1).reshape(accum, -1, *x.shape[1:])
    return constrain(out) if constrain is not None else out

  def split(batch):
    """[b, ...] -> [accum, b/accum, ...] (padded with weight 0 when b % accum != 0)."""
    if gather:
      batch = jax.tree.map(lambda x: jax.lax.all_gather(x, axis, tiled=True), batch)
    images, labels = batch['image'], batch['label']
    mask = batch.get('mask')
    mask = jnp.ones(labels.shape[:1], jnp.float32) if mask is None else mask.astype(jnp.float32)
    if axis is None:
      weights = mask / jnp.sum(mask)
      return split_rows(images), split_rows(labels), split_rows(weights)
    if gather:
      weights = mask / jnp.sum(mask)
    else:
      # Global count N of real examples; each device's share is D·Σ m ℓ / N.
      weights = mask * jax.lax.psum(1, axis) / jax.lax.psum(jnp.sum(mask), axis)
    b = labels.shape[0]
    pad = -b % accum
    def reshape(x):
      if pad:
        x = jnp.pad(x, [(0, pad)] + [(0, 0)] * (x.ndim - 1))
      return x.reshape(accum, (b + pad) // accum, *x.shape[1:])
    return reshape(images), reshape(labels), reshape(weights)

  # XLA:CPU runs convolutions that sit in a loop body one to two orders of
  # magnitude slower than at top level (jax-ml/jax#12868; even a length-1
  # scan), so on CPU, and whenever there is a single micro-batch, the
  # micro-batches are a Python loop (traced once each) rather than a lax.scan.
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
    metric_zeros = {k: jnp.zeros((), jnp.float32) for k in metric_names(task)}
    init = (jnp.zeros((), jnp.float32), zeros, metric_zeros, model_state)
    xs = (*micro, jnp.arange(accum))
    if unrolled:
      carry = init
      for k in range(accum):
        carry, _ = body(carry, jax.tree.map(lambda x, k=k: x[k], xs))
      return carry
    (total, grads, metrics, state), _ = jax.lax.scan(body, init, xs)
    return total, grads, metrics, state

  def residuals(params, model_state, micro, rng):
    """r(θ) with ½‖r‖² = J(θ): √(m_i/N)·task residuals per example, then the penalty."""
    parts = []
    for k in range(accum):
      images, labels, weights = (x[k] for x in micro)
      logits, _ = apply(params, model_state, images, jax.random.fold_in(rng, k))
      r = task.residuals(logits, labels).astype(jnp.float32)
      parts.append(jnp.ravel(r * jnp.sqrt(weights)[:, None]))
    if penalty_residuals is not None:
      parts.append(penalty_residuals(params).astype(jnp.float32))
    return jnp.concatenate(parts)

  def train_step(state: TrainState, batch, rng):
    step_rng = jax.random.fold_in(rng, state.step)
    if mix is not None:  # same key on every device: the targets depend on the global batch
      images, targets = mix(jax.random.fold_in(step_rng, MIX_TAG), batch['image'],
                            batch['label'], axis_name=axis)
      batch = dict(batch, image=images, label=targets)
    if axis is not None and not gather:  # gathered: every device computes the same, same key
      step_rng = jax.random.fold_in(step_rng, jax.lax.axis_index(axis))
    micro = split(batch)
    loss, grads, metrics, model_state = data_value_and_grad(
        state.params, state.model_state, micro, step_rng)
    if axis is not None and not gather:
      loss = jax.lax.pmean(loss, axis)
      grads = jax.lax.pmean(grads, axis)
      metrics = jax.lax.pmean(metrics, axis)
    if axis is not None:  # BatchNorm statistics agree on every device
      model_state = jax.lax.pmean(model_state, axis)
    if frozen_state is not None:  # statistics of frozen modules stay as they were
      model_state = jax.tree.map(lambda frozen, old, new: old if frozen else new,
                                 frozen_state, state.model_state, model_state)
    out = {'train/loss': loss, **{f'train/{k}': v for k, v in metrics.items()}}
    objective = loss
    if penalty is not None:
      reg, reg_grads = jax.value_and_grad(penalty)(state.params)
      grads = jax.tree.map(jnp.add, grads, reg_grads)
      objective = loss + reg
      out['train/penalty'] = reg
      out['train/objective'] = objective

    if with_value_fn:
      def value_fn(params):
        value = data_value_and_grad(params, state.model_state, micro, step_rng,
                                    with_grad=False)[0]
        if axis is not None and not gather:
          value = jax.lax.pmean(value, axis)
        return value + penalty(params) if penalty is not None else value
      updates, opt_state = tx.update(grads, state.opt_state, state.params, value=objective,
                                     grad=grads, value_fn=value_fn)
    elif with_residual_fn:
      updates, opt_state = tx.update(
          grads, state.opt_state, state.params,
          residual_fn=lambda params: residuals(params, state.model_state, micro, step_rng))
    else:
      updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)

    grad_norm = optim.global_norm(grads)
    out['grad_norm'] = grad_norm
    out['param_norm'] = optim.global_norm(params)
    if schedule is not None:
      out['lr'] = jnp.asarray(schedule(state.step), jnp.float32)
    out['finite'] = jnp.isfinite(objective) & jnp.isfinite(grad_norm)
    return TrainState(state.step + 1, params, opt_state, model_state), out

  return train_step
