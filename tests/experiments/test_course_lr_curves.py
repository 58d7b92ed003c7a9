"""Learning rate too low / good / too high on the digits MLP: the course's
loss-curve sketch as numbers (40 steps instead of the command's 100)."""
import pytest

from experiments.course import lr_curves


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
  return lr_curves.run_all(str(tmp_path_factory.mktemp('lr')), steps=40)


def test_the_four_regimes(runs):
  c = lr_curves.claims(runs)
  # Low: decreasing, but slowly (more than half the initial loss remains).
  assert c['low_last_loss'] < c['low_first_loss']
  assert c['low_last_loss'] > 0.5 * c['low_first_loss']
  # Good: the lowest loss of all, far below its start.
  assert c['good_last_loss'] < 0.5
  assert c['good_last_loss'] == min(c[f'{k}_last_loss'] for k in lr_curves.RATES)
  # High: stuck on a plateau near ln(10) = 2.30 (dead ReLUs predict the prior).
  assert c['high_diverged'] == 0.0
  assert c['high_last_loss'] == pytest.approx(2.30, abs=0.15)
  # Very high: explodes.
  assert c['very high_diverged'] == 1.0
  for k in ('low', 'good', 'high'):
    assert c[f'{k}_diverged'] == 0.0


def test_plot(runs, tmp_path):
  lr_curves.plot(runs, str(tmp_path / 'lr_curves.png'))
  assert (tmp_path / 'lr_curves.png').stat().st_size > 20_000
