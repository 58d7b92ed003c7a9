"""Backprop by hand (flat and gate-level VJPs) against jax.grad in float64, and
the (x + y)z graph."""
from experiments.course import backprop


def test_claims_hold_and_plot(tmp_path):
  claims = backprop.run(str(tmp_path), quick=True)
  assert len(claims) == 4, sorted(claims)
  failed = {k: c for k, c in claims.items() if not c.holds}
  assert not failed, failed
  assert (tmp_path / 'backprop.png').stat().st_size > 20_000
