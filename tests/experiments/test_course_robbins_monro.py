"""Robbins–Monro step sizes (quick mode): constant α stalls at ασ²/(2−α), 1/t
converges as σ²/t, 1/(t+1)² stops short."""
from experiments.course import robbins_monro
from tests.experiments import course_claims


def test_claims_hold_and_plot(tmp_path):
  course_claims.assert_quick_claims_hold(robbins_monro, tmp_path, 6)
