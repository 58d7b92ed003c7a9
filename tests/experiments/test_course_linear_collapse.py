"""A deep identity-activation MLP is one affine map and stays linear on XOR;
with ReLU it separates XOR."""
from experiments.course import linear_collapse
from tests.experiments import course_claims


def test_claims_hold_and_plot(tmp_path):
  course_claims.assert_quick_claims_hold(linear_collapse, tmp_path, 4)
