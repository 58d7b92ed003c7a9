"""Learning-rate schedules: functions `step -> lr`, jit-safe.

Every schedule converts the step to the default float dtype (float32, or
float64 under `jax_enable_x64`) before any arithmetic, and all step-valued
hyper-parameters (decay_steps, boundaries, ...) are Python floats, so nothing
is ever cast to int32: `cosine_decay(1000., 1e10)(1e9)` is 975.528 (an int32
`decay_steps` would have overflowed). Steps count from 0, the first update.

Formulas (t the step, α₀ the initial value):
  constant             α₀
  step_decay           α₀·factorⁿ, n = #{boundaries b ≤ t}
  exponential_decay    α₀·e^(−k·t)
  inverse_time_decay   α₀ / (1 + k·t)
  cosine_decay         α_T + (α₀−α_T)·½(1 + cos(π·min(t,T)/T))   (Loshchilov & Hutter 2017)
  linear_decay         α₀ + (α_T−α₀)·min(t,T)/T
  poly_decay           α_T + (α₀−α_T)·(1 − min(t,T)/T)^p          (SegFormer: p = 1)
  inverse_sqrt_decay   α₀ / √max(t, 1)   (t = 0 is given α₀, same as t = 1)
  warmup               linear from init_value to schedule(0) over W steps, then schedule(t − W)
  scale_by_batch_size  lr · batch_size / base_batch_size   (Goyal et al. 2017)
"""
from __future__ import annotations

import math
from typing import Any, Callable, Sequence, Union

import jax.numpy as jnp

from optim import checks
from optim.transform import float_dtype

Schedule = Callable[[Any], Any]
ScalarOrSchedule = Union[float, Schedule]

__all__ = [
    'Schedule', 'constant', 'step_decay', 'exponential_decay',
    'inverse_time_decay', 'cosine_decay', 'linear_decay', 'poly_decay',
    'inverse_sqrt_decay', 'warmup', 'scale_by_batch_size', 'create', 'NAMES',
]


def _t(step: Any) -> Any:
  return jnp.asarray(step).astype(float_dtype())


def constant(value: float) -> Schedule:
  """α(t) = value."""
  value = checks.finite('value', value)

  def schedule(step):
    return jnp.full(jnp.shape(step), value, float_dtype())

  return schedule


def step_decay(init_value: float, boundaries: Sequence[float],
               factor: float = 0.1) -> Schedule:
  """α₀·factorⁿ where n counts the boundaries already reached (t ≥ b).

  E.g. boundaries (30, 60, 90) in epochs-as-steps and factor 0.1 is the
  ResNet/ImageNet recipe (He et al. 2016), torch's MultiStepLR.
  """
  init_value = checks.finite('init_value', init_value)
  factor = checks.non_negative('factor', factor)
  bounds = [checks.non_negative('boundaries', b) for b in boundaries]
  if bounds != sorted(bounds):
    raise ValueError(f'boundaries must be sorted ascending, got {list(boundaries)!r}')

  def schedule(step):
    t = _t(step)
    value = jnp.full(jnp.shape(t), init_value, float_dtype())
    for b in bounds:
      value = value * jnp.where(t >= b, factor, 1.0).astype(value.dtype)
    return value

  return schedule


def exponential_decay(init_value: float, rate: float) -> Schedule:
  """α₀·e^(−k·t), k = `rate` ≥ 0 per step."""
  init_value = checks.finite('init_value', init_value)
  rate = checks.non_negative('rate', rate)
  return lambda step: init_value * jnp.exp(-rate * _t(step))


def inverse_time_decay(init_value: float, rate: float) -> Schedule:
  """α₀ / (1 + k·t), k = `rate` ≥ 0 per step."""
  init_value = checks.finite('init_value', init_value)
  rate = checks.non_negative('rate', rate)
  return lambda step: init_value / (1.0 + rate * _t(step))


def cosine_decay(init_value: float, decay_steps: float, end_value: float = 0.0
                 ) -> Schedule:
  """α_T + (α₀ − α_T)·½(1 + cos(π·min(t, T)/T)), constant α_T after T steps."""
  init_value = checks.finite('init_value', init_value)
  end_value = checks.finite('end_value', end_value)
  decay_steps = checks.positive('decay_steps', decay_steps)

  def schedule(step):
    frac = jnp.minimum(_t(step), decay_steps) / decay_steps
    return end_value + (init_value - end_value) * 0.5 * (1.0 + jnp.cos(math.pi * frac))

  return schedule


def linear_decay(init_value: float, decay_steps: float, end_value: float = 0.0
                 ) -> Schedule:
  """α₀ + (α_T − α₀)·min(t, T)/T."""
  return poly_decay(init_value, decay_steps, power=1.0, end_value=end_value)


def poly_decay(init_value: float, decay_steps: float, power: float = 1.0,
               end_value: float = 0.0) -> Schedule:
  """α_T + (α₀ − α_T)·(1 − min(t, T)/T)^p; SegFormer trains with p = 1."""
  init_value = checks.finite('init_value', init_value)
  end_value = checks.finite('end_value', end_value)
  decay_steps = checks.positive('decay_steps', decay_steps)
  power = checks.positive('power', power)

  def schedule(step):
    frac = jnp.minimum(_t(step), decay_steps) / decay_steps
    return end_value + (init_value - end_value) * (1.0 - frac) ** power

  return schedule


def inverse_sqrt_decay(init_value: float) -> Schedule:
  """α₀/√t for t ≥ 1, and α₀ at t = 0 (√max(t, 1) keeps the first step finite)."""
  init_value = checks.finite('init_value', init_value)
  return lambda step: init_value / jnp.sqrt(jnp.maximum(_t(step), 1.0))


def warmup(schedule: ScalarOrSchedule, warmup_steps: float,
           init_value: float = 0.0) -> Schedule:
  """Linear warmup from `init_value` to `schedule(0)` over W steps, then the schedule.

    α(t) = init + (schedule(0) − init)·t/W   for t < W
    α(t) = schedule(t − W)                   for t ≥ W

  (optax.join_schedules([linear_schedule(init, peak, W), schedule], [W])).
  `schedule` may be a float (warmup to a constant).
  """
  warmup_steps = checks.non_negative('warmup_steps', warmup_steps)
  init_value = checks.finite('init_value', init_value)
  if not callable(schedule):
    schedule = constant(schedule)
  if warmup_steps == 0:
    return schedule
  peak = schedule

  def warmed(step):
    t = _t(step)
    target = jnp.asarray(peak(jnp.zeros_like(t))).astype(t.dtype)
    ramp = init_value + (target - init_value) * (t / warmup_steps)
    after = jnp.asarray(peak(jnp.maximum(t - warmup_steps, 0.0))).astype(t.dtype)
    return jnp.where(t < warmup_steps, ramp, after)

  return warmed


def scale_by_batch_size(learning_rate: ScalarOrSchedule, batch_size: int,
                        base_batch_size: int = 256) -> ScalarOrSchedule:
  """The linear scaling rule (Goyal et al. 2017): lr × batch_size/base_batch_size.

  Returns a float for a float, a schedule for a schedule.
  """
  batch_size = checks.positive('batch_size', batch_size)
  base_batch_size = checks.positive('base_batch_size', base_batch_size)
  factor = batch_size / base_batch_size
  if callable(learning_rate):
    return lambda step: learning_rate(step) * factor
  return checks.learning_rate(learning_rate) * factor


# --------------------------------------------------------------------------
# By name, for configs.

NAMES = ('constant', 'step', 'exponential', 'inverse_time', 'cosine', 'linear',
         'inverse_sqrt', 'poly', 'warmup_cosine', 'warmup_linear')


def create(name: str, init_value: float, total_steps: float,
           warmup_steps: float = 0, **kwargs: Any) -> Schedule:
  """A schedule by name for configs, with optional linear warmup from 0.

  The decaying part lasts `total_steps - warmup_steps` steps. Defaults when
  a keyword is not given: `step` decays ×`factor` (0.1) at 50% and 75% of
  the decay (`boundaries` overrides, in steps after warmup); `exponential`
  reaches 1% of α₀ at the end (`rate` overrides); `inverse_time` reaches
  α₀/10 (`rate` overrides); `cosine`, `linear`, `poly` end at `end_value`
  (0.0), `poly` with `power` 1.0. `warmup_cosine`/`warmup_linear` are
  `cosine`/`linear` and require warmup_steps > 0.

  Args:
    name: one of `NAMES`.
    init_value: α₀, the peak rate after warmup.
    total_steps: length of the run in steps (warmup included).
    warmup_steps: linear warmup from 0 over this many steps.
    **kwargs: the schedule's own keywords listed above.

  Returns:
    A schedule `step -> lr`.
  """
  checks.one_of('name', name, NAMES)
  total_steps = checks.positive('total_steps', total_steps)
  warmup_steps = checks.non_negative('warmup_steps', warmup_steps)
  if warmup_steps >= total_steps:
    raise ValueError(f'warmup_steps must be < total_steps={total_steps}, got {warmup_steps}')
  if name.startswith('warmup_') and warmup_steps == 0:
    raise ValueError(f'schedule {name!r} needs warmup_steps > 0, got {warmup_steps}')
  decay_steps = total_steps - warmup_steps
  allowed = {
      'constant': (), 'step': ('boundaries', 'factor'), 'exponential': ('rate',),
      'inverse_time': ('rate',), 'cosine': ('end_value',), 'linear': ('end_value',),
      'inverse_sqrt': (), 'poly': ('power', 'end_value'),
      'warmup_cosine': ('end_value',), 'warmup_linear': ('end_value',),
  }[name]
  unknown = sorted(set(kwargs) - set(allowed))
  if unknown:
    raise ValueError(f'unknown keyword(s) {unknown} for schedule {name!r}; valid: {list(allowed)}')
  if name == 'constant':
    base = constant(init_value)
  elif name == 'step':
    bounds = kwargs.get('boundaries', (0.5 * decay_steps, 0.75 * decay_steps))
    base = step_decay(init_value, bounds, kwargs.get('factor', 0.1))
  elif name == 'exponential':
    base = exponential_decay(init_value, kwargs.get('rate', math.log(100.0) / decay_steps))
  elif name == 'inverse_time':
    base = inverse_time_decay(init_value, kwargs.get('rate', 9.0 / decay_steps))
  elif name in ('cosine', 'warmup_cosine'):
    base = cosine_decay(init_value, decay_steps, kwargs.get('end_value', 0.0))
  elif name in ('linear', 'warmup_linear'):
    base = linear_decay(init_value, decay_steps, kwargs.get('end_value', 0.0))
  elif name == 'inverse_sqrt':
    base = inverse_sqrt_decay(init_value)
  else:  # poly
    base = poly_decay(init_value, decay_steps, kwargs.get('power', 1.0),
                      kwargs.get('end_value', 0.0))
  return warmup(base, warmup_steps)
