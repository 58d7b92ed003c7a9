"""The Swin ablation rows on the digits proxy (quick mode): the variants are the
paper's rows (parameter counts) and every one trains; no ordering is claimed
at this budget (experiments/course/swin_ablation.py says why)."""
from experiments.course import swin_ablation
from tests.experiments import course_claims


def test_claims_hold_and_plot(tmp_path):
  course_claims.assert_quick_claims_hold(swin_ablation, tmp_path, 1 + 6 + 1)
