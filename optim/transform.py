"""Small gradient transformations that the optimizers in `optim.alias` chain.

Each factory returns a real `optax.GradientTransformation(init, update)`, as
optax's own `_src/transform.py` does: a "direction" transform (momentum,
Adagrad, RMSProp, Adam, ...) whose state is a `NamedTuple` (with an int32
`count` where the method needs the step number), an L2 weight-decay term, and
the final `-learning_rate` scaling. Written here, not wrapped: only optax's
base types are reused so the results chain with any optax transform.

Conventions (torch.optim's, which are the course formulas):
  * accumulators start at zero and `eps` is added outside the square root,
    unless a knob (`eps_in_sqrt`, `initial_accumulator_value`,
    `amsgrad_max='corrected'`) asks for optax's choice;
  * moments are stored in the parameters' dtype and updates keep the
    gradients' dtype (bf16 in, bf16 out);
  * step-dependent scalars (bias corrections, NAdam's momentum schedule) are
    computed in the default float dtype (float32, or float64 under
    `jax_enable_x64`), then cast to the moment's dtype.
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional, Union

import jax
import jax.numpy as jnp
import numpy as np
import optax

from optim import checks

ScalarOrSchedule = Union[float, Callable[[Any], Any]]

_INT32_MAX = np.iinfo(np.int32).max


def float_dtype() -> np.dtype:
  """The default float dtype: float32, or float64 when x64 is enabled."""
  return jax.dtypes.canonicalize_dtype(np.float64)


def safe_increment(count: jax.Array) -> jax.Array:
  """`count + 1` for an int32 counter, saturating at the int32 maximum."""
  return jnp.where(count < _INT32_MAX, count + 1, count).astype(jnp.int32)


def debias_factor(decay: float, count: jax.Array) -> jax.Array:
  """`1 - decay**count` in the default float dtype (Kingma & Ba 2015, §3)."""
  t = jnp.asarray(count).astype(float_dtype())
  return 1.0 - jnp.asarray(decay, float_dtype()) ** t


def _zeros(params: Any) -> Any:
  return jax.tree.map(jnp.zeros_like, params)


def _cast(scalar: jax.Array, like: jax.Array) -> jax.Array:
  return jnp.asarray(scalar).astype(like.dtype)


# --------------------------------------------------------------------------
# Learning rate and weight decay.


class ScaleByScheduleState(NamedTuple):
  """Step counter of a scheduled learning rate."""
  count: jax.Array  # int32 scalar, the step whose rate is applied next.


def scale_by_learning_rate(learning_rate: ScalarOrSchedule,
                           flip_sign: bool = True
                           ) -> optax.GradientTransformation:
  """Multiplies updates by `-learning_rate` (or `+` if not `flip_sign`).

  A float gives a stateless scaling; a schedule `step -> lr` is evaluated at
  the int32 step count kept in `ScaleByScheduleState` (0 on the first update).

  Args:
    learning_rate: a finite float >= 0 or a schedule.
    flip_sign: descend (the default) rather than ascend.

  Returns:
    An `optax.GradientTransformation`.
  """
  learning_rate = checks.learning_rate(learning_rate)
  sign = -1.0 if flip_sign else 1.0

  if checks.is_schedule(learning_rate):
    schedule = learning_rate

    def init_fn(params):
      del params
      return ScaleByScheduleState(count=jnp.zeros([], jnp.int32))

    def update_fn(updates, state, params=None):
      del params
      step_size = sign * jnp.asarray(schedule(state.count))
      updates = jax.tree.map(lambda g: _cast(step_size, g) * g, updates)
      return updates, ScaleByScheduleState(count=safe_increment(state.count))

    return optax.GradientTransformation(init_fn, update_fn)

  step_size = sign * learning_rate

  def init_const(params):
    del params
    return optax.EmptyState()

  def update_const(updates, state, params=None):
    del params
    return jax.tree.map(lambda g: _cast(step_size, g) * g, updates), state

  return optax.GradientTransformation(init_const, update_const)


def add_decayed_weights(weight_decay: float, mask: Any = None
                        ) -> optax.GradientTransformation:
  """Adds `weight_decay * params` to the updates: the gradient of the L2
  penalty ½·λ‖W‖².

  Placed before a direction transform this is torch's `weight_decay` (L2
  regularisation); placed after it and before the learning rate it is
  AdamW's decoupled decay (Loshchilov & Hutter 2019).

  Args:
    weight_decay: λ ≥ 0.
    mask: None (decay every leaf), 'weights' (only leaves with ndim ≥ 2, i.e.
      not biases or normalisation scales, as DeiT/timm recipes do), a pytree
      of bools like the params, or a callable `params -> that pytree`.

  Returns:
    A stateless `optax.GradientTransformation`.
  """
  weight_decay = checks.non_negative('weight_decay', weight_decay)
  if not (mask is None or mask == 'weights' or callable(mask) or not isinstance(mask, str)):
    raise ValueError(f"mask must be None, 'weights', a pytree of bools or a callable, "
                     f'got {mask!r}')

  def init_fn(params):
    del params
    return optax.EmptyState()

  def update_fn(updates, state, params=None):
    if params is None:
      raise ValueError('weight_decay needs params: call update(grads, state, params)')
    if mask is None:
      keep = jax.tree.map(lambda _: True, params)
    elif isinstance(mask, str):
      keep = jax.tree.map(lambda p: jnp.ndim(p) >= 2, params)
    else:
      keep = mask(params) if callable(mask) else mask
    updates = jax.tree.map(
        lambda g, p, k: g + _cast(weight_decay, g) * p.astype(g.dtype) if k else g,
        updates, params, keep)
    return updates, state

  return optax.GradientTransformation(init_fn, update_fn)


# --------------------------------------------------------------------------
# Momentum.


class TraceState(NamedTuple):
  """Momentum buffer b."""
  trace: Any


def trace(decay: float, nesterov: bool = False) -> optax.GradientTransformation:
  """Heavy-ball momentum (Polyak 1964) and Nesterov's variant (Sutskever 2013).

    b_t = μ·b_{t-1} + g_t;   direction = b_t, or g_t + μ·b_t with Nesterov.

  With a constant learning rate α this is the same iterate sequence as the
  course's v_t = μ·v_{t-1} − α·g_t, x_t = x_{t-1} + v_t (v = −α·b).
  """
  decay = checks.non_negative('momentum', decay)

  def init_fn(params):
    return TraceState(trace=_zeros(params))

  def update_fn(updates, state, params=None):
    del params
    new_trace = jax.tree.map(lambda g, b: g + _cast(decay, g) * b.astype(g.dtype),
                             updates, state.trace)
    if nesterov:
      updates = jax.tree.map(lambda g, b: g + _cast(decay, g) * b, updates, new_trace)
    else:
      updates = new_trace
    new_trace = jax.tree.map(lambda b, old: b.astype(old.dtype), new_trace, state.trace)
    return updates, TraceState(trace=new_trace)

  return optax.GradientTransformation(init_fn, update_fn)


# --------------------------------------------------------------------------
# Adaptive per-coordinate scalings.


class ScaleByRssState(NamedTuple):
  """Adagrad's running sum of squared gradients."""
  sum_of_squares: Any


def scale_by_rss(initial_accumulator_value: float = 0.0, eps: float = 1e-10,
                 eps_in_sqrt: bool = False) -> optax.GradientTransformation:
  """Adagrad (Duchi et al. 2011): G_t = G_{t-1} + g_t², direction g_t/(√G_t + ε).

  `eps_in_sqrt=True` gives optax's g_t/√(G_t + ε) (0 where G_t = 0); optax
  also starts the accumulator at 0.1 (`initial_accumulator_value`).
  """
  initial_accumulator_value = checks.non_negative(
      'initial_accumulator_value', initial_accumulator_value)
  eps = checks.non_negative('eps', eps)

  def init_fn(params):
    return ScaleByRssState(sum_of_squares=jax.tree.map(
        lambda p: jnp.full_like(p, initial_accumulator_value), params))

  def update_fn(updates, state, params=None):
    del params
    acc = jax.tree.map(lambda g, s: s + g * g, updates, state.sum_of_squares)
    if eps_in_sqrt:
      updates = jax.tree.map(
          lambda g, s: g * jnp.where(s > 0, jax.lax.rsqrt(s + _cast(eps, s)), 0.0).astype(g.dtype),
          updates, acc)
    else:
      updates = jax.tree.map(lambda g, s: g / (jnp.sqrt(s) + _cast(eps, s)), updates, acc)
    return updates, ScaleByRssState(sum_of_squares=acc)

  return optax.GradientTransformation(init_fn, update_fn)


class ScaleByRmsState(NamedTuple):
  """RMSProp's moving averages: `nu` of g², and `mu` of g when centered."""
  nu: Any
  mu: Any = None


def scale_by_rms(decay: float = 0.99, eps: float = 1e-8, centered: bool = False,
                 eps_in_sqrt: bool = False) -> optax.GradientTransformation:
  """RMSProp (Tieleman & Hinton 2012), optionally centered (Graves 2013).

    v_t = ρ·v_{t-1} + (1−ρ)·g_t²;   m_t = ρ·m_{t-1} + (1−ρ)·g_t (centered)
    direction = g_t / (√(v_t − m_t²) + ε)     (m_t ≡ 0 when not centered)

  `eps_in_sqrt=True` is optax's g_t/√(v_t − m_t² + ε).
  """
  decay = checks.unit_interval('decay', decay)
  eps = checks.non_negative('eps', eps)

  def init_fn(params):
    return ScaleByRmsState(nu=_zeros(params), mu=_zeros(params) if centered else None)

  def update_fn(updates, state, params=None):
    del params
    nu = jax.tree.map(lambda g, v: (1 - decay) * (g * g) + decay * v, updates, state.nu)
    if centered:
      mu = jax.tree.map(lambda g, m: (1 - decay) * g + decay * m, updates, state.mu)
      var = jax.tree.map(lambda v, m: v - m * m, nu, mu)
    else:
      mu, var = None, nu
    if eps_in_sqrt:
      updates = jax.tree.map(lambda g, s: g * jax.lax.rsqrt(s + _cast(eps, s)), updates, var)
    else:
      updates = jax.tree.map(lambda g, s: g / (jnp.sqrt(s) + _cast(eps, s)), updates, var)
    return updates, ScaleByRmsState(nu=nu, mu=mu)

  return optax.GradientTransformation(init_fn, update_fn)


class ScaleByAdamState(NamedTuple):
  """Adam's step count and first/second moment estimates (also Adamax's)."""
  count: jax.Array  # int32 scalar.
  mu: Any
  nu: Any


class ScaleByAmsgradState(NamedTuple):
  """Adam's state plus AMSGrad's running maximum of the second moment."""
  count: jax.Array
  mu: Any
  nu: Any
  nu_max: Any


AMSGRAD_MAX = ('raw', 'corrected')


def scale_by_adam(b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8,
                  bias_correction: bool = True, amsgrad: bool = False,
                  amsgrad_max: str = 'raw') -> optax.GradientTransformation:
  """Adam (Kingma & Ba 2015) and AMSGrad (Reddi et al. 2018).

    m_t = β₁·m_{t-1} + (1−β₁)·g_t,   v_t = β₂·v_{t-1} + (1−β₂)·g_t²
    m̂_t = m_t/(1−β₁ᵗ),  v̂_t = v_t/(1−β₂ᵗ)
    direction = m̂_t / (√v̂_t + ε)

  Without bias correction (the course's "Adam (almost)") m̂ = m, v̂ = v: the
  first step is then (1−β₁)/√(1−β₂) times the corrected one (≈3.16 for the
  defaults, ε aside). AMSGrad replaces v̂_t by a running maximum:
  `amsgrad_max='raw'` (torch) keeps max(v) and bias-corrects it,
  `'corrected'` (optax) keeps max(v̂).
  """
  b1 = checks.unit_interval('b1', b1)
  b2 = checks.unit_interval('b2', b2)
  eps = checks.non_negative('eps', eps)
  checks.one_of('amsgrad_max', amsgrad_max, AMSGRAD_MAX)

  def init_fn(params):
    count = jnp.zeros([], jnp.int32)
    if amsgrad:
      return ScaleByAmsgradState(count, _zeros(params), _zeros(params), _zeros(params))
    return ScaleByAdamState(count, _zeros(params), _zeros(params))

  def update_fn(updates, state, params=None):
    del params
    count = safe_increment(state.count)
    mu = jax.tree.map(lambda g, m: (1 - b1) * g + b1 * m, updates, state.mu)
    nu = jax.tree.map(lambda g, v: (1 - b2) * (g * g) + b2 * v, updates, state.nu)
    if bias_correction:
      c1, c2 = debias_factor(b1, count), debias_factor(b2, count)
      mu_hat = jax.tree.map(lambda m: m / _cast(c1, m), mu)
      correct_nu = lambda v: v / _cast(c2, v)  # noqa: E731
    else:
      mu_hat = mu
      correct_nu = lambda v: v  # noqa: E731
    if amsgrad:
      if amsgrad_max == 'raw':
        nu_max = jax.tree.map(jnp.maximum, state.nu_max, nu)
        nu_hat = jax.tree.map(correct_nu, nu_max)
      else:
        nu_max = jax.tree.map(lambda a, v: jnp.maximum(a, correct_nu(v)), state.nu_max, nu)
        nu_hat = nu_max
    else:
      nu_hat = jax.tree.map(correct_nu, nu)
    updates = jax.tree.map(lambda m, v: m / (jnp.sqrt(v) + _cast(eps, v)), mu_hat, nu_hat)
    if amsgrad:
      return updates, ScaleByAmsgradState(count, mu, nu, nu_max)
    return updates, ScaleByAdamState(count, mu, nu)

  return optax.GradientTransformation(init_fn, update_fn)


def scale_by_adamax(b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8
                    ) -> optax.GradientTransformation:
  """Adamax (Kingma & Ba 2015, §7.1), Adam with an infinity-norm moment.

    m_t = β₁·m_{t-1} + (1−β₁)·g_t,   u_t = max(β₂·u_{t-1}, |g_t| + ε)
    direction = m_t / ((1−β₁ᵗ)·u_t)

  ε inside the max as torch and optax both place it. State: `ScaleByAdamState`
  with `nu` holding u.
  """
  b1 = checks.unit_interval('b1', b1)
  b2 = checks.unit_interval('b2', b2)
  eps = checks.non_negative('eps', eps)

  def init_fn(params):
    return ScaleByAdamState(jnp.zeros([], jnp.int32), _zeros(params), _zeros(params))

  def update_fn(updates, state, params=None):
    del params
    count = safe_increment(state.count)
    mu = jax.tree.map(lambda g, m: (1 - b1) * g + b1 * m, updates, state.mu)
    nu = jax.tree.map(lambda g, u: jnp.maximum(b2 * u, jnp.abs(g) + _cast(eps, g)),
                      updates, state.nu)
    c1 = debias_factor(b1, count)
    updates = jax.tree.map(lambda m, u: (m / _cast(c1, m)) / u, mu, nu)
    return updates, ScaleByAdamState(count, mu, nu)

  return optax.GradientTransformation(init_fn, update_fn)


class ScaleByNadamState(NamedTuple):
  """NAdam's count, moments and the running product of momentum coefficients."""
  count: jax.Array
  mu_product: jax.Array  # scalar in the default float dtype, Π_{i≤t} μ_i.
  mu: Any
  nu: Any


def scale_by_nadam(b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8,
                   momentum_decay: float = 4e-3) -> optax.GradientTransformation:
  """NAdam (Dozat 2016) with the momentum schedule of torch.optim.NAdam.

    μ_t = β₁·(1 − ½·0.96^(t·ψ)),   Π_t = Π_{i≤t} μ_i
    m_t, v_t as in Adam,  v̂_t = v_t/(1−β₂ᵗ)
    direction = [(1−μ_t)/(1−Π_t)·g_t + μ_{t+1}/(1−Π_t·μ_{t+1})·m_t] / (√v̂_t + ε)
  """
  b1 = checks.unit_interval('b1', b1)
  b2 = checks.unit_interval('b2', b2)
  eps = checks.non_negative('eps', eps)
  momentum_decay = checks.non_negative('momentum_decay', momentum_decay)

  def mu_at(t):
    return b1 * (1.0 - 0.5 * jnp.asarray(0.96, float_dtype()) ** (t * momentum_decay))

  def init_fn(params):
    return ScaleByNadamState(jnp.zeros([], jnp.int32), jnp.ones([], float_dtype()),
                             _zeros(params), _zeros(params))

  def update_fn(updates, state, params=None):
    del params
    count = safe_increment(state.count)
    t = count.astype(float_dtype())
    mu_t, mu_next = mu_at(t), mu_at(t + 1.0)
    mu_product = state.mu_product * mu_t
    coef_g = (1.0 - mu_t) / (1.0 - mu_product)
    coef_m = mu_next / (1.0 - mu_product * mu_next)
    c2 = debias_factor(b2, count)
    mu = jax.tree.map(lambda g, m: (1 - b1) * g + b1 * m, updates, state.mu)
    nu = jax.tree.map(lambda g, v: (1 - b2) * (g * g) + b2 * v, updates, state.nu)
    updates = jax.tree.map(
        lambda g, m, v: (_cast(coef_g, g) * g + _cast(coef_m, m) * m)
        / (jnp.sqrt(v / _cast(c2, v)) + _cast(eps, v)),
        updates, mu, nu)
    return updates, ScaleByNadamState(count, mu_product, mu, nu)

  return optax.GradientTransformation(init_fn, update_fn)


class ScaleByAdadeltaState(NamedTuple):
  """Adadelta's moving averages of g² (`e_g`) and of squared steps (`e_x`)."""
  e_g: Any
  e_x: Any


def scale_by_adadelta(rho: float = 0.9, eps: float = 1e-6
                      ) -> optax.GradientTransformation:
  """Adadelta (Zeiler 2012).

    E[g²]_t = ρ·E[g²]_{t-1} + (1−ρ)·g_t²
    Δ_t = √(E[Δ²]_{t-1} + ε) / √(E[g²]_t + ε) · g_t
    E[Δ²]_t = ρ·E[Δ²]_{t-1} + (1−ρ)·Δ_t²
    direction = Δ_t   (torch then scales by lr, default 1.0)
  """
  rho = checks.unit_interval('rho', rho, include_one=True)
  eps = checks.non_negative('eps', eps)

  def init_fn(params):
    return ScaleByAdadeltaState(_zeros(params), _zeros(params))

  def update_fn(updates, state, params=None):
    del params
    e_g = jax.tree.map(lambda g, e: rho * e + (1 - rho) * (g * g), updates, state.e_g)
    delta = jax.tree.map(
        lambda g, eg, ex: jnp.sqrt(ex + _cast(eps, ex)) / jnp.sqrt(eg + _cast(eps, eg)) * g,
        updates, e_g, state.e_x)
    e_x = jax.tree.map(lambda d, e: rho * e + (1 - rho) * (d * d), delta, state.e_x)
    return delta, ScaleByAdadeltaState(e_g, e_x)

  return optax.GradientTransformation(init_fn, update_fn)


def maybe(condition: bool, transform: optax.GradientTransformation
          ) -> Optional[optax.GradientTransformation]:
  """`transform` if `condition` else None (dropped by `optim.alias.chain`)."""
  return transform if condition else None
