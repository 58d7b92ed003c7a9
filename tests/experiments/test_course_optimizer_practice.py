"""Adam defaults vs SGD + momentum with step decay and a 3-rate tuning budget,
through the trainer (quick mode)."""
from experiments.course import optimizer_practice
from tests.experiments import course_claims


def test_claims_hold_and_plot(tmp_path):
  course_claims.assert_quick_claims_hold(optimizer_practice, tmp_path, 3)
