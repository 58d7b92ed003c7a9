"""Minibatch gradient noise (quick mode): variance ∝ 1/B, noise balls shrink with B
and with a decaying rate."""
from experiments.course import minibatch_noise
from tests.experiments import course_claims


def test_claims_hold_and_plot(tmp_path):
  course_claims.assert_quick_claims_hold(minibatch_noise, tmp_path, 5)
