"""The linear scaling rule on digits: batch ×4 with lr ×4 follows the base
curve per epoch; batch ×4 at the base lr lags (2 epochs instead of the
command's 3)."""
import pytest

from experiments.course import batch_scaling


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
  return batch_scaling.run_all(str(tmp_path_factory.mktemp('bs')), epochs=2.0)


def test_linear_scaling_rule(runs, tmp_path):
  c = batch_scaling.claims(runs)
  assert c['scaled_gap'] < 0.25 * c['unscaled_gap']
  assert c['scaled_gap'] < 0.15
  assert c['scaled_val_accuracy'] == pytest.approx(c['base_val_accuracy'], abs=0.03)
  assert c['unscaled_final_loss'] > 1.5 * c['base_final_loss']
  assert c['unscaled_val_accuracy'] < c['scaled_val_accuracy']
  batch_scaling.plot(runs, str(tmp_path / 'batch_scaling.png'))
  assert (tmp_path / 'batch_scaling.png').stat().st_size > 20_000
