"""Adam defaults vs SGD + momentum with step decay and a 3-rate tuning budget,
through the trainer (quick mode)."""
from experiments.course import optimizer_practice


def test_claims_hold_and_plot(tmp_path):
  claims = optimizer_practice.run(str(tmp_path), quick=True)
  assert len(claims) == 3, sorted(claims)
  failed = {k: c for k, c in claims.items() if not c.holds}
  assert not failed, failed
  assert (tmp_path / 'optimizer_practice.png').stat().st_size > 20_000
