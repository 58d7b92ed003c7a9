"""Conv is shift-equivariant, FC is not, max pooling reduces the change a
1-pixel shift causes."""
from experiments.course import shift_equivariance
from tests.experiments import course_claims


def test_claims_hold_and_plot(tmp_path):
  course_claims.assert_quick_claims_hold(shift_equivariance, tmp_path, 3)
