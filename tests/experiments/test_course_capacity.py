"""Capacity on the spiral (quick mode): more hidden units fit more, and a large
net with L2 instead of a small net."""
from experiments.course import capacity


def test_claims_hold_and_plot(tmp_path):
  claims = capacity.run(str(tmp_path), quick=True)
  assert len(claims) == 5, sorted(claims)
  failed = {k: c for k, c in claims.items() if not c.holds}
  assert not failed, failed
  assert (tmp_path / 'capacity.png').stat().st_size > 20_000
