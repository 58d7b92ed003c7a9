"""Transfer learning on digits 0-4 → 5-9 (10 labels per class), quick mode, through the trainer:
fine-tuning beats training from scratch, a linear probe beats chance, and the probe's
frozen parameters are those of the source run."""
from __future__ import annotations

import os

import jax
import numpy as np
import pytest

from experiments import init_from
from experiments.course import transfer


@pytest.fixture(scope='module')
def result(tmp_path_factory):
  out = str(tmp_path_factory.mktemp('transfer'))
  return out, transfer.run(out, quick=True)


def test_claims_hold(result):
  _, claims = result
  assert claims and all(c.holds for c in claims.values()), claims
  assert claims['fine-tune − scratch (target test accuracy)'].measured > 0
  assert claims['linear probe: target test accuracy'].measured > transfer.CHANCE


def test_plot_written(result):
  out, _ = result
  assert os.path.getsize(os.path.join(out, 'transfer.png')) > 10_000


def test_probe_keeps_the_source_features(result):
  out, _ = result
  runs = os.path.join(out, 'runs_quick', transfer.NAME)
  source = init_from.read_workdir(os.path.join(runs, 'source'), None)['params']
  probe = init_from.read_workdir(os.path.join(runs, 'linear_probe'), None)['params']
  assert set(source) == set(probe)
  for name in source:
    if name != 'head':
      for a, b in zip(jax.tree.leaves(source[name]), jax.tree.leaves(probe[name])):
        np.testing.assert_array_equal(a, b, err_msg=name)
  assert not np.array_equal(source['head']['kernel'], probe['head']['kernel'])
