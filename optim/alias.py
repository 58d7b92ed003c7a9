"""First-order optimizers: chains of the small transforms in `optim.transform`.

Each optimizer is `chain(L2 weight decay, direction, [decoupled decay], -lr)`
and returns a real `optax.GradientTransformation`. Semantics and defaults are
torch.optim's (the course formulas): eps outside the square root, zero-started
accumulators, `weight_decay` added to the gradient as an L2 term (decoupled
only in `adamw`). Knobs reach optax's choices where they differ (see
docs/references.md §Optimizer semantics).

Usage:
  opt = optim.adam(1e-3)
  state = opt.init(params)
  updates, state = opt.update(grads, state, params)
  params = optax.apply_updates(params, updates)
"""
from __future__ import annotations

from typing import Any, Optional

import optax

from optim import checks
from optim import transform as tr
from optim.transform import ScalarOrSchedule


def chain(*transforms: Optional[optax.GradientTransformation]
          ) -> optax.GradientTransformation:
  """`optax.chain` of the given transforms, skipping `None`s."""
  return optax.chain(*[t for t in transforms if t is not None])


def _l2(weight_decay: float) -> Optional[optax.GradientTransformation]:
  weight_decay = checks.non_negative('weight_decay', weight_decay)
  return tr.maybe(weight_decay > 0, tr.add_decayed_weights(weight_decay))


def sgd(learning_rate: ScalarOrSchedule, momentum: float = 0.0,
        nesterov: bool = False, weight_decay: float = 0.0
        ) -> optax.GradientTransformation:
  """Stochastic gradient descent, with heavy-ball or Nesterov momentum.

    g ← g + λ·x;   b ← μ·b + g;   x ← x − α·b   (Nesterov: x ← x − α·(g + μ·b))

  Args:
    learning_rate: α, a float or a schedule.
    momentum: μ ≥ 0; 0 is plain SGD.
    nesterov: use Nesterov momentum (needs μ > 0).
    weight_decay: λ ≥ 0, L2 term added to the gradient.

  Returns:
    An `optax.GradientTransformation`.
  """
  momentum = checks.non_negative('momentum', momentum)
  if nesterov and momentum == 0:
    raise ValueError(f'nesterov=True needs momentum > 0, got momentum={momentum!r}')
  return chain(_l2(weight_decay),
               tr.maybe(momentum > 0, tr.trace(momentum, nesterov)),
               tr.scale_by_learning_rate(learning_rate))


def adagrad(learning_rate: ScalarOrSchedule, eps: float = 1e-10,
            initial_accumulator_value: float = 0.0, weight_decay: float = 0.0,
            eps_in_sqrt: bool = False) -> optax.GradientTransformation:
  """Adagrad (Duchi, Hazan & Singer 2011): x ← x − α·g/(√G + ε), G = Σ g².

  `eps_in_sqrt=True, initial_accumulator_value=0.1, eps=1e-7` is optax.adagrad.
  """
  return chain(_l2(weight_decay),
               tr.scale_by_rss(initial_accumulator_value, eps, eps_in_sqrt),
               tr.scale_by_learning_rate(learning_rate))


def rmsprop(learning_rate: ScalarOrSchedule, decay: float = 0.99,
            eps: float = 1e-8, momentum: float = 0.0, centered: bool = False,
            weight_decay: float = 0.0, eps_in_sqrt: bool = False
            ) -> optax.GradientTransformation:
  """RMSProp (Tieleman & Hinton 2012): x ← x − α·g/(√v + ε), v = EMA_ρ(g²).

  `centered` divides by √(v − EMA_ρ(g)²) (Graves 2013); `momentum` μ > 0
  keeps b ← μ·b + g/(√v + ε) and steps x ← x − α·b (torch's order: the
  buffer holds unscaled directions, so a schedule applies the current α).
  `decay=0.9, eps_in_sqrt=True` is optax.rmsprop (without momentum).
  """
  momentum = checks.non_negative('momentum', momentum)
  return chain(_l2(weight_decay),
               tr.scale_by_rms(decay, eps, centered, eps_in_sqrt),
               tr.maybe(momentum > 0, tr.trace(momentum)),
               tr.scale_by_learning_rate(learning_rate))


def adam(learning_rate: ScalarOrSchedule, b1: float = 0.9, b2: float = 0.999,
         eps: float = 1e-8, bias_correction: bool = True, amsgrad: bool = False,
         weight_decay: float = 0.0, amsgrad_max: str = 'raw'
         ) -> optax.GradientTransformation:
  """Adam (Kingma & Ba 2015): x ← x − α·m̂/(√v̂ + ε); see `scale_by_adam`.

  Args:
    learning_rate: α, a float or a schedule.
    b1, b2: β₁, β₂ in [0, 1).
    eps: ε ≥ 0, outside the square root.
    bias_correction: False gives the course's "Adam (almost)" (m̂ = m, v̂ = v).
    amsgrad: keep the running maximum of the second moment (Reddi et al. 2018).
    weight_decay: λ ≥ 0, L2 term added to the gradient (torch.optim.Adam).
    amsgrad_max: 'raw' (torch, max of v) or 'corrected' (optax, max of v̂).

  Returns:
    An `optax.GradientTransformation`.
  """
  return chain(_l2(weight_decay),
               tr.scale_by_adam(b1, b2, eps, bias_correction, amsgrad, amsgrad_max),
               tr.scale_by_learning_rate(learning_rate))


def adamw(learning_rate: ScalarOrSchedule, b1: float = 0.9, b2: float = 0.999,
          eps: float = 1e-8, weight_decay: float = 1e-2, amsgrad: bool = False,
          amsgrad_max: str = 'raw', mask: Any = None) -> optax.GradientTransformation:
  """AdamW (Loshchilov & Hutter 2019): x ← x − α·(m̂/(√v̂ + ε) + λ·x).

  The decay is decoupled from the adaptive scaling and multiplied by the
  learning rate, as in torch.optim.AdamW and optax.adamw. `mask` picks the
  decayed leaves (see `optim.transform.add_decayed_weights`; 'weights'
  skips biases and normalisation scales); the default decays every leaf.
  """
  weight_decay = checks.non_negative('weight_decay', weight_decay)
  return chain(tr.scale_by_adam(b1, b2, eps, True, amsgrad, amsgrad_max),
               tr.maybe(weight_decay > 0, tr.add_decayed_weights(weight_decay, mask)),
               tr.scale_by_learning_rate(learning_rate))


def amsgrad(learning_rate: ScalarOrSchedule, b1: float = 0.9, b2: float = 0.999,
            eps: float = 1e-8, weight_decay: float = 0.0,
            amsgrad_max: str = 'raw') -> optax.GradientTransformation:
  """AMSGrad (Reddi, Kale & Kumar 2018): `adam(..., amsgrad=True)`.

  `amsgrad_max='corrected'` is optax.amsgrad.
  """
  return adam(learning_rate, b1, b2, eps, bias_correction=True, amsgrad=True,
              weight_decay=weight_decay, amsgrad_max=amsgrad_max)


def adadelta(learning_rate: ScalarOrSchedule = 1.0, rho: float = 0.9,
             eps: float = 1e-6, weight_decay: float = 0.0
             ) -> optax.GradientTransformation:
  """Adadelta (Zeiler 2012): x ← x − α·Δ with Δ = √(E[Δ²]+ε)/√(E[g²]+ε)·g."""
  return chain(_l2(weight_decay),
               tr.scale_by_adadelta(rho, eps),
               tr.scale_by_learning_rate(learning_rate))


def adamax(learning_rate: ScalarOrSchedule, b1: float = 0.9, b2: float = 0.999,
           eps: float = 1e-8, weight_decay: float = 0.0
           ) -> optax.GradientTransformation:
  """Adamax (Kingma & Ba 2015, §7.1): x ← x − α/(1−β₁ᵗ)·m/u, u = max(β₂u, |g|+ε)."""
  return chain(_l2(weight_decay),
               tr.scale_by_adamax(b1, b2, eps),
               tr.scale_by_learning_rate(learning_rate))


def nadam(learning_rate: ScalarOrSchedule, b1: float = 0.9, b2: float = 0.999,
          eps: float = 1e-8, momentum_decay: float = 4e-3,
          weight_decay: float = 0.0) -> optax.GradientTransformation:
  """NAdam (Dozat 2016) with torch's momentum schedule; see `scale_by_nadam`."""
  return chain(_l2(weight_decay),
               tr.scale_by_nadam(b1, b2, eps, momentum_decay),
               tr.scale_by_learning_rate(learning_rate))
