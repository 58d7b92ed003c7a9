"""Step-by-step parity of every first-order optimizer with torch.optim.

Both sides start from the same mixed-shape pytree and see the same 100
gradients; the whole parameter trajectory must agree to 1e-10 (relative,
float64, torch in float64 too) and 1e-5 (float32).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Optional

import jax
import numpy as np
import pytest
import torch

import optim
from tests.optim import helpers

STEPS = 100


@dataclasses.dataclass(frozen=True)
class Case:
  id: str
  name: str                      # optim.create name
  ours: dict                     # hyper-parameters for optim.create
  torch_cls: Any
  theirs: dict                   # torch.optim keyword arguments
  schedule: Optional[Callable[[int], float]] = None  # multiplies lr (both sides)


def _cosine(t):
  return 0.5 * (1 + math.cos(math.pi * min(t, STEPS) / STEPS))


T = torch.optim
CASES = [
    Case('sgd', 'sgd', dict(learning_rate=0.05), T.SGD, dict(lr=0.05)),
    Case('sgd_wd', 'sgd', dict(learning_rate=0.05, weight_decay=0.1),
         T.SGD, dict(lr=0.05, weight_decay=0.1)),
    Case('momentum', 'momentum', dict(learning_rate=0.01), T.SGD, dict(lr=0.01, momentum=0.9)),
    Case('sgd_momentum_wd', 'sgd', dict(learning_rate=0.01, momentum=0.5, weight_decay=0.1),
         T.SGD, dict(lr=0.01, momentum=0.5, weight_decay=0.1)),
    Case('nesterov', 'nesterov', dict(learning_rate=0.01, weight_decay=0.01),
         T.SGD, dict(lr=0.01, momentum=0.9, nesterov=True, weight_decay=0.01)),
    Case('adagrad', 'adagrad', dict(learning_rate=0.1), T.Adagrad, dict(lr=0.1)),
    Case('adagrad_init_wd', 'adagrad',
         dict(learning_rate=0.1, initial_accumulator_value=0.5, weight_decay=0.1, eps=1e-6),
         T.Adagrad, dict(lr=0.1, initial_accumulator_value=0.5, weight_decay=0.1, eps=1e-6)),
    Case('rmsprop', 'rmsprop', dict(learning_rate=0.01), T.RMSprop, dict(lr=0.01)),
    Case('rmsprop_centered', 'rmsprop', dict(learning_rate=0.01, centered=True, decay=0.9),
         T.RMSprop, dict(lr=0.01, centered=True, alpha=0.9)),
    Case('rmsprop_momentum_wd', 'rmsprop',
         dict(learning_rate=0.01, momentum=0.9, weight_decay=0.1),
         T.RMSprop, dict(lr=0.01, momentum=0.9, weight_decay=0.1)),
    Case('rmsprop_centered_momentum_cosine', 'rmsprop',
         dict(learning_rate=optim.schedules.cosine_decay(0.01, STEPS), momentum=0.9,
              centered=True),
         T.RMSprop, dict(lr=0.01, momentum=0.9, centered=True), schedule=_cosine),
    Case('adam', 'adam', dict(learning_rate=0.01), T.Adam, dict(lr=0.01)),
    Case('adam_wd', 'adam', dict(learning_rate=0.01, weight_decay=0.1, b1=0.8, b2=0.99),
         T.Adam, dict(lr=0.01, weight_decay=0.1, betas=(0.8, 0.99))),
    Case('adam_amsgrad_wd', 'adam', dict(learning_rate=0.01, amsgrad=True, weight_decay=0.1),
         T.Adam, dict(lr=0.01, amsgrad=True, weight_decay=0.1)),
    Case('adam_cosine', 'adam', dict(learning_rate=optim.schedules.cosine_decay(0.01, STEPS)),
         T.Adam, dict(lr=0.01), schedule=_cosine),
    Case('amsgrad', 'amsgrad', dict(learning_rate=0.01), T.Adam, dict(lr=0.01, amsgrad=True)),
    Case('adamw', 'adamw', dict(learning_rate=0.01, weight_decay=0.1),
         T.AdamW, dict(lr=0.01, weight_decay=0.1)),
    Case('adamw_amsgrad', 'adamw', dict(learning_rate=0.01, amsgrad=True),
         T.AdamW, dict(lr=0.01, amsgrad=True)),
    Case('adadelta', 'adadelta', dict(), T.Adadelta, dict()),
    Case('adadelta_wd', 'adadelta', dict(learning_rate=0.5, rho=0.95, weight_decay=0.1),
         T.Adadelta, dict(lr=0.5, rho=0.95, weight_decay=0.1)),
    Case('adamax', 'adamax', dict(learning_rate=0.01, weight_decay=0.1),
         T.Adamax, dict(lr=0.01, weight_decay=0.1)),
    Case('nadam', 'nadam', dict(learning_rate=0.01), T.NAdam, dict(lr=0.01)),
    Case('nadam_wd', 'nadam', dict(learning_rate=0.01, weight_decay=0.1, momentum_decay=1e-2),
         T.NAdam, dict(lr=0.01, weight_decay=0.1, momentum_decay=1e-2)),
]

# Read by tests/optim/test_coverage.py: create() names with a torch parity test.
TESTED = frozenset(c.name for c in CASES)


@pytest.fixture(scope='module')
def trajectories():
  """Our trajectories for every case, float64 and float32, two compiles in all."""
  out = {}
  for np_dtype, wide in ((np.float64, True), (np.float32, False)):
    with helpers.x64(wide):
      opts = {c.id: optim.create(c.name, **c.ours) for c in CASES}
      out[np_dtype] = helpers.run_many(
          opts, helpers.init_params(np_dtype), helpers.grad_sequence(STEPS, np_dtype))
  return out


def _check(case: Case, ours, np_dtype, torch_dtype, tol: float) -> None:
  params = helpers.init_params(np_dtype)
  grads = helpers.grad_sequence(STEPS, np_dtype)
  theirs = helpers.run_torch(
      lambda ps: case.torch_cls(ps, foreach=False, **case.theirs), params, grads,
      dtype=torch_dtype, schedule=case.schedule)
  assert all(x.dtype == np_dtype for x in jax.tree.leaves(ours))
  err = helpers.max_rel_error(ours, theirs)
  assert err <= tol, f'{case.id}: max relative error {err:.3g} > {tol}'
  # The trajectory moved (a frozen optimizer would trivially agree).
  start = helpers.init_params(np.float64)['dense']['kernel']
  assert np.max(np.abs(theirs['dense']['kernel'][-1] - start)) > 1e-3


@pytest.mark.parametrize('case', CASES, ids=[c.id for c in CASES])
def test_torch_parity_float64(case, trajectories):
  _check(case, trajectories[np.float64][case.id], np.float64, torch.float64, 1e-10)


@pytest.mark.parametrize('case', CASES, ids=[c.id for c in CASES])
def test_torch_parity_float32(case, trajectories):
  _check(case, trajectories[np.float32][case.id], np.float32, torch.float32, 1e-5)
