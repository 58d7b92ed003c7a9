"""Weight averaging as optax transforms: an EMA of the parameters and Polyak averaging.

Both are identity transforms on the updates (they return `updates`
unchanged) whose state holds an average of the iterates
x_t = x_{t-1} + u_t, computed inside `update` as `optax.apply_updates(params,
updates)`, i.e. bit-for-bit the parameters the trainer gets from
`optax.apply_updates` after the step. They therefore go LAST in the chain,
where `updates` are final:

    tx = optax.chain(optimizer, optim.averaging.ema(0.9998),
                     optim.averaging.polyak(start_step=1000))
    ...
    updates, opt_state = tx.update(grads, opt_state, params)
    params = optax.apply_updates(params, updates)
    averaged = optim.averaging.averaged_params(opt_state)  # {'ema': ..., 'polyak': ...}

The state is a NamedTuple of arrays (an int32 `count` and a tree shaped like
the parameters), so it is checkpointed and resumed with the optimizer state.

EMA (timm's `ModelEmaV3`): after update t (t = 1, 2, ...),

    e_t = e_{t-1} + (1 - β_t)(x_t - e_{t-1}),   e_0 = x_0,
    s = max(0, t - update_after_step - 1);  β_t = 0 if s = 0, else
    β_t = clip(1 - (1 + s/γ)^(-p), min_decay, decay)   with `warmup`,
    β_t = decay                                        without,

so the average restarts from the parameters after the first update (s = 0)
and, with warmup, its horizon grows with the step count (γ = 1, p = 2/3 is
timm's default; p = 1 is the uniform average of x_1, ..., x_t).

Polyak averaging (Polyak & Juditsky 1992; Ruppert 1988): the uniform mean of
the iterates from `start_step` on, x̄_t = (1/(t - t₀ + 1)) Σ_{k=t₀}^{t} x_k
for t ≥ t₀ = `start_step` (x_0 is the initial point, so `start_step=0`
includes it), computed incrementally as x̄_t = x̄_{t-1} + (x_t - x̄_{t-1}) / n.
Before t₀ the state tracks the current iterate (x̄_t = x_t).
"""
from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from optim import checks
from optim import transform as tr


class EmaState(NamedTuple):
  """EMA state: updates seen and the moving average of the parameters."""
  count: jax.Array  # int32 scalar
  ema: Any


class PolyakState(NamedTuple):
  """Polyak state: updates seen and the uniform average from `start_step` on."""
  count: jax.Array  # int32 scalar
  average: Any


def _copy(params: Any) -> Any:
  # Fresh buffers: the state must not alias the (donated) parameters.
  return jax.tree.map(lambda p: jnp.array(p, copy=True), params)


def _new_params(updates: Any, params: Any, name: str) -> Any:
  if params is None:
    raise ValueError(f'{name} needs the parameters: call tx.update(updates, state, params)')
  return optax.apply_updates(params, updates)


def ema_decay(step: jax.Array, decay: float, warmup: bool = False, warmup_gamma: float = 1.0,
              warmup_power: float = 2 / 3, min_decay: float = 0.0,
              update_after_step: int = 0) -> jax.Array:
  """β_t of timm's ModelEmaV3.get_decay for update t = `step` (see module docstring)."""
  s = jnp.maximum(0, jnp.asarray(step) - update_after_step - 1).astype(tr.float_dtype())
  if warmup:
    beta = 1.0 - (1.0 + s / warmup_gamma) ** (-warmup_power)
    beta = jnp.maximum(jnp.minimum(beta, decay), min_decay)
  else:
    beta = jnp.full_like(s, decay)
  return jnp.where(s <= 0, 0.0, beta)


def _running_average(state_cls, weight_fn, name: str) -> optax.GradientTransformation:
  """a_t = a_{t-1} + w_t (x_t - a_{t-1}), a_0 = x_0, with w_t = weight_fn(t); updates unchanged."""

  def init_fn(params):
    return state_cls(jnp.zeros((), jnp.int32), _copy(params))

  def update_fn(updates, state, params=None):
    new = _new_params(updates, params, name)
    count = tr.safe_increment(state.count)
    weight = weight_fn(count)
    avg = jax.tree.map(lambda a, x: a + weight.astype(a.dtype) * (x - a), state[1], new)
    return updates, state_cls(count, avg)

  return optax.GradientTransformation(init_fn, update_fn)


def ema(decay: float, *, warmup: bool = False, warmup_gamma: float = 1.0,
        warmup_power: float = 2 / 3, min_decay: float = 0.0,
        update_after_step: int = 0) -> optax.GradientTransformation:
  """Exponential moving average of the parameters (updates pass through unchanged)."""
  decay = checks.unit_interval('ema decay', decay, include_one=True)
  min_decay = checks.unit_interval('ema min_decay', min_decay, include_one=True)
  warmup_gamma = checks.positive('ema warmup_gamma', warmup_gamma)
  warmup_power = checks.positive('ema warmup_power', warmup_power)
  update_after_step = checks.non_negative_int('ema update_after_step', update_after_step)
  return _running_average(
      EmaState, lambda t: 1.0 - ema_decay(t, decay, warmup, warmup_gamma, warmup_power,
                                          min_decay, update_after_step), 'ema')


def polyak(start_step: int = 0) -> optax.GradientTransformation:
  """Uniform average of the iterates x_t for t ≥ `start_step` (updates pass through)."""
  start_step = checks.non_negative_int('polyak start_step', start_step)

  def weight(t):
    n = (t - start_step + 1).astype(tr.float_dtype())
    return jnp.where(t < start_step, 1.0, 1.0 / jnp.maximum(n, 1.0))

  return _running_average(PolyakState, weight, 'polyak')


def averaged_params(opt_state: Any) -> dict[str, Any]:
  """The averages held anywhere in an optimizer state: {'ema': ..., 'polyak': ...}.

  Only the averages present are returned ({} for a state without any); the
  state may be nested (optax.chain, inject_hyperparams, masking wrappers).
  """
  found: dict[str, Any] = {}
  kinds = {EmaState: ('ema', 'ema'), PolyakState: ('polyak', 'average')}
  nodes = jax.tree.leaves(opt_state, is_leaf=lambda x: isinstance(x, tuple(kinds)))
  for node in nodes:
    if type(node) in kinds:
      name, field = kinds[type(node)]
      if name in found:
        raise ValueError(f'the optimizer state holds more than one {name} average')
      found[name] = getattr(node, field)
  return found
