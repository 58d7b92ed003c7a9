"""Random vs grid search with one important hyperparameter, and the digits
grid sweep end to end through experiments.sweep."""
from experiments.course import random_vs_grid


def test_claims_hold_and_plot(tmp_path):
  claims = random_vs_grid.run(str(tmp_path), quick=True)
  assert len(claims) == 3, sorted(claims)
  failed = {k: c for k, c in claims.items() if not c.holds}
  assert not failed, failed
  assert (tmp_path / 'random_vs_grid.png').stat().st_size > 20_000
  assert (tmp_path / 'random_vs_grid_sweep.png').stat().st_size > 10_000
