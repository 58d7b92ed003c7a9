"""The `ema` and `polyak` config sections: which weight averages a run keeps and evaluates.

    tx = optax.chain(tx, *weight_averaging.transforms(config))   # last in the chain
    ...
    for prefix, params in weight_averaging.eval_params(state.params, state.opt_state).items():
      metrics.update(evaluate(params) under `prefix`)   # 'val', 'val_ema', 'val_polyak'

Keys (see `optim/averaging.py` for the math):

- `ema.decay`: None (off) or β in [0, 1]: e_t = e_{t-1} + (1 - β_t)(x_t - e_{t-1}).
- `ema.warmup`: timm ModelEmaV3's warmup β_t = min(decay, 1 - (1 + s/γ)^-p),
  s = updates after `ema.update_after_step`; `ema.warmup_gamma` γ (1.0),
  `ema.warmup_power` p (2/3), `ema.min_decay` (0.0), `ema.update_after_step` (0).
- `polyak.start_step`: None (off) or t₀ ≥ 0: the uniform mean of the
  iterates x_{t₀}, …, x_t.
"""
from __future__ import annotations

from typing import Any

import ml_collections
import optax

from optim import averaging

# Eval-metric prefix of each set of weights ('val/accuracy', 'val_ema/accuracy', ...).
PREFIXES = {'params': 'val', 'ema': 'val_ema', 'polyak': 'val_polyak'}


def ema_config() -> ml_collections.ConfigDict:
  """The `ema` section; off (decay None) by default."""
  c = ml_collections.ConfigDict()
  c.decay = ml_collections.FieldReference(None, field_type=float)
  c.warmup = False
  c.warmup_gamma = 1.0
  c.warmup_power = 2 / 3
  c.min_decay = 0.0
  c.update_after_step = 0
  return c


def polyak_config() -> ml_collections.ConfigDict:
  """The `polyak` section; off (start_step None) by default."""
  c = ml_collections.ConfigDict()
  c.start_step = ml_collections.FieldReference(None, field_type=int)
  return c


def _checked(section: str, fn, **kwargs) -> optax.GradientTransformation:
  """fn(**kwargs), with optim's ValueError reworded as one line naming `section.key`."""
  try:
    return fn(**kwargs)
  except ValueError as e:
    raise ValueError(f'{section}: {e}'.splitlines()[0]) from None


def transforms(config: ml_collections.ConfigDict) -> list[optax.GradientTransformation]:
  """The averaging transforms the config enables (EMA first), to chain after the optimizer.

  Sections absent from the config count as off. Raises ValueError (one
  line) for an out-of-domain value.
  """
  out = []
  ema = config.get('ema')
  if ema is not None and ema.get('decay') is not None:
    if not isinstance(ema.warmup, bool):
      raise ValueError(f'ema.warmup={ema.warmup!r}; must be true or false')
    out.append(_checked('ema', averaging.ema, decay=ema.decay, warmup=ema.warmup,
                        warmup_gamma=ema.warmup_gamma, warmup_power=ema.warmup_power,
                        min_decay=ema.min_decay, update_after_step=ema.update_after_step))
  polyak = config.get('polyak')
  if polyak is not None and polyak.get('start_step') is not None:
    if isinstance(polyak.start_step, bool) or not isinstance(polyak.start_step, int):
      raise ValueError(f'polyak.start_step={polyak.start_step!r}; must be an int >= 0 or None')
    out.append(_checked('polyak', averaging.polyak, start_step=polyak.start_step))
  return out


def eval_params(params: Any, opt_state: Any) -> dict[str, Any]:
  """{metric prefix: weights}: the raw parameters as 'val', then every average in opt_state."""
  out = {PREFIXES['params']: params}
  for name, avg in averaging.averaged_params(opt_state).items():
    out[PREFIXES[name]] = avg
  return out
