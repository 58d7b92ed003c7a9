"""Warmup (quick mode, through the trainer): Adam at α = 0.05 spikes without
warmup and trains with it."""
from experiments.course import warmup


def test_claims_hold_and_plot(tmp_path):
  claims = warmup.run(str(tmp_path), quick=True)
  assert len(claims) == 4, sorted(claims)
  failed = {k: c for k, c in claims.items() if not c.holds}
  assert not failed, failed
  assert (tmp_path / 'warmup.png').stat().st_size > 20_000
