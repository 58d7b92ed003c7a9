"""Robbins–Monro step sizes (quick mode): constant α stalls at ασ²/(2−α), 1/t
converges as σ²/t, 1/(t+1)² stops short."""
from experiments.course import robbins_monro


def test_claims_hold_and_plot(tmp_path):
  claims = robbins_monro.run(str(tmp_path), quick=True)
  assert len(claims) == 6, sorted(claims)
  failed = {k: c for k, c in claims.items() if not c.holds}
  assert not failed, failed
  assert (tmp_path / 'robbins_monro.png').stat().st_size > 20_000
