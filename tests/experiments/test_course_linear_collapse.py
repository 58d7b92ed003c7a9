"""A deep identity-activation MLP is one affine map and stays linear on XOR;
with ReLU it separates XOR."""
from experiments.course import linear_collapse


def test_claims_hold_and_plot(tmp_path):
  claims = linear_collapse.run(str(tmp_path), quick=True)
  assert len(claims) == 4, sorted(claims)
  failed = {k: c for k, c in claims.items() if not c.holds}
  assert not failed, failed
  assert (tmp_path / 'linear_collapse.png').stat().st_size > 20_000
