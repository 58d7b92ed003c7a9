"""Fails when a public first-order optimizer or schedule has no parity test.

The parity suites export the names they cover (`TESTED`); this compares them
with what `optim` publishes. Second-order names (optim.second_order) are the
second-order suite's business and are excluded here.
"""
from __future__ import annotations

import inspect

import optim
from optim import alias
from optim import schedules
from optim import second_order
from tests.optim import test_convergence
from tests.optim import test_optax_parity
from tests.optim import test_properties
from tests.optim import test_schedules
from tests.optim import test_torch_parity

SECOND_ORDER = set(getattr(second_order, 'OPTIMIZERS', {})) | set(
    getattr(second_order, '__all__', ()))


def public_first_order() -> set[str]:
  """create() names plus optimizer factories exported from optim.alias."""
  names = set(optim.registry.FIRST_ORDER)
  for name in optim.__all__:
    obj = getattr(optim, name)
    if inspect.isfunction(obj) and obj.__module__ == alias.__name__ and name != 'chain':
      names.add(name)
  return names - SECOND_ORDER


def test_public_names_are_what_we_expect():
  assert public_first_order() >= {'sgd', 'momentum', 'nesterov', 'adagrad', 'rmsprop', 'adam',
                                  'adam_nobc', 'adamw', 'amsgrad', 'adadelta', 'adamax',
                                  'nadam'}
  assert set(optim.registry.FIRST_ORDER) <= set(optim.names())


def test_every_optimizer_has_a_parity_test():
  # adam_nobc (the course's "Adam (almost)") has no torch/optax twin; its
  # exact first step is pinned in test_convergence.test_adam_bias_correction.
  formula_only = {'adam_nobc'}
  covered = test_torch_parity.TESTED | test_optax_parity.TESTED | formula_only
  missing = public_first_order() - covered
  assert not missing, f'optimizers without a torch/optax parity test: {sorted(missing)}'


def test_every_optimizer_converges_and_runs_under_jit_and_pmap():
  missing = public_first_order() - test_convergence.TESTED
  assert not missing, f'no convergence test: {sorted(missing)}'
  in_properties = {name for name, _ in test_properties.OPTIMIZERS.values()}
  missing = public_first_order() - in_properties
  assert not missing, f'no jit/pmap/bf16 test: {sorted(missing)}'


def test_every_schedule_has_a_test():
  public = set(schedules.__all__) - {'Schedule', 'create', 'NAMES'}
  missing = public - test_schedules.TESTED
  assert not missing, f'schedules without a formula/optax test: {sorted(missing)}'
  missing = set(schedules.NAMES) - test_schedules.TESTED_CREATE
  assert not missing, f'schedules.create names without a test: {sorted(missing)}'
  for name in public:
    assert callable(getattr(schedules, name)), name


def test_parity_cases_use_public_names():
  for case in test_torch_parity.CASES:
    assert case.name in optim.names(), case.name
  for name, _, _ in test_optax_parity.CASES.values():
    assert name in optim.names(), name
