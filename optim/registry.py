"""`optim.create(name, **hparams)`: optimizers by name, for configs.

First-order names map to the factories in `optim.alias` (with a few
presets: `momentum`, `nesterov`, `adam_nobc`); second-order names come from
`optim.second_order.OPTIMIZERS`, read at call time so that package can
register without this module knowing it.
"""
from __future__ import annotations

import functools
import inspect
from typing import Any, Callable

import optax

from optim import alias


def _preset(fn: Callable[..., optax.GradientTransformation], **fixed: Any
            ) -> Callable[..., optax.GradientTransformation]:
  """`fn` with some defaults changed; the signature shows the new defaults."""
  sig = inspect.signature(fn)
  params = [p.replace(default=fixed[p.name]) if p.name in fixed else p
            for p in sig.parameters.values()]

  @functools.wraps(fn)
  def wrapped(*args, **kwargs):
    return fn(*args, **{**fixed, **kwargs})

  wrapped.__signature__ = sig.replace(parameters=params)
  return wrapped


FIRST_ORDER: dict[str, Callable[..., optax.GradientTransformation]] = {
    'sgd': alias.sgd,
    'momentum': _preset(alias.sgd, momentum=0.9),
    'nesterov': _preset(alias.sgd, momentum=0.9, nesterov=True),
    'adagrad': alias.adagrad,
    'rmsprop': alias.rmsprop,
    'adam': alias.adam,
    'adam_nobc': _preset(alias.adam, bias_correction=False),
    'adamw': alias.adamw,
    'amsgrad': alias.amsgrad,
    'adadelta': alias.adadelta,
    'adamax': alias.adamax,
    'nadam': alias.nadam,
}


def optimizers() -> dict[str, Callable[..., Any]]:
  """Every name `create` accepts, first- and second-order, to its factory."""
  from optim import second_order  # pylint: disable=g-import-not-at-top
  return {**FIRST_ORDER, **getattr(second_order, 'OPTIMIZERS', {})}


def names() -> list[str]:
  """Sorted names accepted by `create`."""
  return sorted(optimizers())


def create(name: str, **hparams: Any) -> Any:
  """Builds the optimizer `name` with keyword hyper-parameters.

  Args:
    name: one of `names()`, e.g. 'adam', 'momentum', 'lbfgs'.
    **hparams: keywords of that factory; `learning_rate` takes a float or a
      schedule.

  Returns:
    The factory's result (an `optax.GradientTransformation`).

  Raises:
    ValueError: unknown name, unknown hyper-parameter, or a missing required
      one; each message lists what is valid.
  """
  table = optimizers()
  if name not in table:
    raise ValueError(f'unknown optimizer name={name!r}; valid: {sorted(table)}')
  factory = table[name]
  try:
    sig = inspect.signature(factory)
  except (TypeError, ValueError):
    return factory(**hparams)
  params = sig.parameters
  takes_var_kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
  valid = [n for n, p in params.items()
           if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)]
  unknown = sorted(set(hparams) - set(valid))
  if unknown and not takes_var_kw:
    raise ValueError(f'unknown hyper-parameter(s) {unknown} for optimizer {name!r}; '
                     f'valid: {valid}')
  missing = [n for n in valid if params[n].default is inspect.Parameter.empty
             and n not in hparams]
  if missing:
    raise ValueError(f'optimizer {name!r} needs {missing}; valid hyper-parameters: {valid}')
  return factory(**hparams)
