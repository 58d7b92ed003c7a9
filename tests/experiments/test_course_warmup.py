"""Warmup (quick mode, through the trainer): Adam at α = 0.05 spikes without
warmup and trains with it."""
from experiments.course import warmup
from tests.experiments import course_claims


def test_claims_hold_and_plot(tmp_path):
  course_claims.assert_quick_claims_hold(warmup, tmp_path, 4)
