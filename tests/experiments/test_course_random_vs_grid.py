"""Random vs grid search with one important hyperparameter, and the digits
grid sweep end to end through experiments.sweep."""
from experiments.course import random_vs_grid
from tests.experiments import course_claims


def test_claims_hold_and_plot(tmp_path):
  course_claims.assert_quick_claims_hold(random_vs_grid, tmp_path, 3,
                                         plots=('random_vs_grid_sweep.png',))
