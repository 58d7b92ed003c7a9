"""Conv is shift-equivariant, FC is not, max pooling reduces the change a
1-pixel shift causes."""
from experiments.course import shift_equivariance


def test_claims_hold_and_plot(tmp_path):
  claims = shift_equivariance.run(str(tmp_path), quick=True)
  assert len(claims) == 3, sorted(claims)
  failed = {k: c for k, c in claims.items() if not c.holds}
  assert not failed, failed
  assert (tmp_path / 'shift_equivariance.png').stat().st_size > 20_000
