"""The config's optimizer, schedule and penalty sections, mapped onto `optim`.

`make_optimizer` passes every key of `config.optimizer` to
`optim.create(optimizer.name, ...)` except `learning_rate` (replaced by the
schedule) and the policy keys `POLICY_KEYS`, which map onto `optim.policy`
and `optim.layer_decay`:

- `lr_mult` ({pattern: m}): the matched parameters train with learning rate m·lr;
- `no_decay` (patterns): exempt from AdamW's decoupled weight decay;
- `freeze` (patterns): zero updates, and fixed BatchNorm statistics for the
  modules whose parameters are all frozen (a linear probe: `['^(?!head/)']`);
- `layer_decay` (float or None): BEiT/MAE layer-wise learning-rate decay.
"""
from __future__ import annotations

import inspect
import re
from typing import Any, Callable, Optional

import jax
import ml_collections
import optax

from experiments import weight_averaging
from experiments.trainer import durations
import optim
from optim import layer_decay as layer_decay_lib
from optim import policy as policy_lib
from optim.second_order import methods as second_order

POLICY_KEYS = ('lr_mult', 'no_decay', 'freeze', 'layer_decay')
REGULARIZERS = ('none', 'l2', 'l1', 'elastic_net')
PENALTY_MASKS = ('kernels', 'weights', 'all')


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
  warmup = durations.steps(config, num_train, global_batch, 'warmup_steps', 'warmup_epochs',
                           container=config.schedule) or 0
  sched.pop('warmup_steps', None)
  sched.pop('warmup_epochs', None)
  lr = config.optimizer.learning_rate
  if lr is None:
    return None
  return optim.schedules.create(name, init_value=lr, total_steps=total_steps,
                                warmup_steps=warmup, **sched)


def policy_of(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """The policy keys of config.optimizer (absent or empty ones left out)."""
  out = {}
  for key in POLICY_KEYS:
    value = config.optimizer.get(key)
    if isinstance(value, ml_collections.ConfigDict):
      value = value.to_dict()
    if value is not None and value != {} and value != () and value != []:
      out[key] = value
  return out


def _multipliers(lr_mult: Optional[dict[str, float]], decay: Optional[float]
                 ) -> Callable[[Any], Any]:
  """tree -> per-leaf learning-rate factor: lr_mult's times layer decay's."""
  def factors(tree):
    out = jax.tree.map(lambda _: 1.0, tree)
    if lr_mult:
      out = policy_lib.lr_multipliers(tree, lr_mult)
    if decay is not None:
      out = jax.tree.map(lambda a, b: a * b, out,
                         layer_decay_lib.layer_decay_multipliers(tree, decay))
    return out
  return factors


def make_optimizer(config: ml_collections.ConfigDict, schedule) -> optax.GradientTransformation:
  """optim.create(optimizer.name, learning_rate=schedule, **other optimizer keys), clipped,
  with the policy keys applied (module docstring).

  Order: freeze(chain(clip, tx)) then the learning-rate factors, then the
  weight averages (`ema`, `polyak`; experiments/weight_averaging.py), so clipping
  and the optimizer's state only see trainable parameters, and a factor
  multiplies the final update −lr·u exactly as a torch parameter group's lr.
  """
  hparams = config.optimizer.to_dict()
  name = hparams.pop('name')
  for key in POLICY_KEYS:
    hparams.pop(key, None)
  policy = policy_of(config)
  hparams.pop('learning_rate', None)
  if schedule is not None:
    hparams['learning_rate'] = schedule
  if second_order.is_second_order(name):
    used = [k for k in ('lr_mult', 'freeze', 'layer_decay') if k in policy]
    if used:
      raise ValueError(f'optimizer.{used[0]}={policy[used[0]]!r} with optimizer.name={name!r}: '
                       'a line search or Newton step chooses its own step size over all '
                       f'parameters; {used[0]} needs a first-order optimizer')
  no_decay = policy.get('no_decay')
  if no_decay:
    factory = optim.registry.optimizers().get(name)
    if factory is not None and 'mask' not in inspect.signature(factory).parameters:
      raise ValueError(f'optimizer.no_decay={list(no_decay)!r} needs an optimizer with a '
                       f'weight-decay mask (adamw), not optimizer.name={name!r}')
    if hparams.get('mask') is not None:
      raise ValueError('give optimizer.no_decay or optimizer.mask, not both')
    # Inside freeze the mask sees only the trainable leaves; `build` checks the patterns
    # against every parameter.
    hparams['mask'] = policy_lib.no_decay_mask(no_decay, strict='freeze' not in policy)
  tx = optim.create(name, **hparams)
  if config.grad_clip_norm is not None:
    tx = optax.chain(optim.clip_by_global_norm(config.grad_clip_norm), tx)
  if 'freeze' in policy:
    tx = policy_lib.freeze(tx, policy['freeze'])
  if 'lr_mult' in policy or 'layer_decay' in policy:
    if 'layer_decay' in policy:
      layer_decay_lib.check_decay(policy['layer_decay'])
    tx = optax.chain(tx, policy_lib.scale_by_multipliers(
        _multipliers(policy.get('lr_mult'), policy.get('layer_decay'))))
  averages = weight_averaging.transforms(config)  # last: they average the final iterates
  if averages:
    tx = optax.chain(tx, *averages)
  return tx


def check_policy(config: ml_collections.ConfigDict, params: Any) -> None:
  """Raises ValueError when a policy pattern matches no parameter of the model (or the model
  has no layers for layer_decay); `params` may be shapes."""
  policy = policy_of(config)
  if 'lr_mult' in policy:
    policy_lib.lr_multipliers(params, policy['lr_mult'])
  if 'no_decay' in policy:
    policy_lib.no_decay_mask(policy['no_decay'])(params)
  if 'freeze' in policy:
    policy_lib.frozen_mask(params, policy['freeze'])
  if 'layer_decay' in policy:
    layer_decay_lib.layer_decay_multipliers(params, policy['layer_decay'])


def frozen_state_mask(config: ml_collections.ConfigDict, params: Any, model_state: Any) -> Any:
  """Per model-state leaf (e.g. BatchNorm mean/var): True when optimizer.freeze fixes it.

  A statistic belongs to the module at its path minus the collection and the
  leaf name; it is frozen when that module has parameters and all of them
  are frozen, or (a BatchNorm without scale and bias) when a freeze pattern
  matches the statistic's own path. None when nothing is frozen.
  """
  patterns = policy_of(config).get('freeze')
  if not patterns or not model_state:
    return None
  frozen = dict(zip(policy_lib.leaf_paths(params),
                    jax.tree.leaves(policy_lib.frozen_mask(params, patterns))))

  def is_frozen(path, leaf):
    del leaf
    name = policy_lib.path_name(path[1:])  # drop the collection ('batch_stats')
    module = name.rsplit('/', 1)[0] + '/'
    owned = [f for p, f in frozen.items() if p.startswith(module)]
    if owned:
      return all(owned)
    return any(re.search(p, name) for p in patterns)

  return jax.tree_util.tree_map_with_path(is_frozen, model_state)


def _is_kernel(path: tuple, leaf: Any) -> bool:
  del leaf
  return getattr(path[-1], 'key', None) == 'kernel'


def _penalty_parts(config: ml_collections.ConfigDict) -> tuple[str, float, Any, dict[str, Any]]:
  reg = config.reg.to_dict()
  kind, strength = reg.pop('kind'), reg.pop('strength')
  mask = reg.pop('mask', 'kernels')
  if kind not in REGULARIZERS:
    raise ValueError(f'reg.kind={kind!r}; valid: {", ".join(REGULARIZERS)}')
  if mask not in PENALTY_MASKS:
    raise ValueError(f"reg.mask={mask!r}; valid: 'kernels', 'weights', 'all'")
  return kind, strength, _is_kernel if mask == 'kernels' else mask, reg


def make_penalty(config: ml_collections.ConfigDict) -> Optional[Callable[[Any], jax.Array]]:
  """λR(θ) from config.reg (optim.regularizers.penalty), or None when off.

  reg.kind: 'none' | 'l2' (Σ W²) | 'l1' (Σ |W|) | 'elastic_net' (Σ β W² + |W|);
  reg.strength: λ; reg.mask: 'kernels' (leaves named 'kernel': dense and conv
  weights, the classic choice for linear models and MLPs), 'weights' (every
  leaf with ndim ≥ 2) or 'all'; other reg.* keys (beta) go to the penalty.
  """
  kind, strength, mask, rest = _penalty_parts(config)
  if kind == 'none' or not strength:
    return None
  return optim.regularizers.penalty(kind, strength, mask=mask, **rest)


def make_penalty_residuals(config: ml_collections.ConfigDict
                           ) -> Optional[Callable[[Any], jax.Array]]:
  """r_R(θ) with ½‖r_R‖² = λR(θ), for least-squares methods; None when there is no penalty.

  Only the L2 penalty is a sum of squares: λ Σ W² = ½‖√(2λ) W‖².
  """
  kind, strength, mask, _ = _penalty_parts(config)
  if kind == 'none' or not strength:
    return None
  if kind != 'l2':
    raise ValueError(f'reg.kind={kind!r} with a least-squares optimizer '
                     f'({config.optimizer.name!r}): only reg.kind=l2 (or none) is a sum of '
                     'squares')
  return lambda params: optim.regularizers.l2_residuals(params, strength, mask)


def needs_residuals(config: ml_collections.ConfigDict) -> bool:
  """Whether config.optimizer is a least-squares method (update takes `residual_fn=`)."""
  return second_order.needs_residual_fn(config.optimizer.name)


def needs_objective(config: ml_collections.ConfigDict) -> bool:
  """Whether config.optimizer's update evaluates the objective (`value_fn=`)."""
  return second_order.needs_value_fn(config.optimizer.name)

