"""Capacity on the spiral (quick mode): more hidden units fit more, and a large
net with L2 instead of a small net."""
from experiments.course import capacity
from tests.experiments import course_claims


def test_claims_hold_and_plot(tmp_path):
  course_claims.assert_quick_claims_hold(capacity, tmp_path, 5)
