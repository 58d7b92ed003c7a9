"""Backprop by hand (flat and gate-level VJPs) against jax.grad in float64, and
the (x + y)z graph."""
from experiments.course import backprop
from tests.experiments import course_claims


def test_claims_hold_and_plot(tmp_path):
  course_claims.assert_quick_claims_hold(backprop, tmp_path, 4)
