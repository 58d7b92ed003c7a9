"""Minibatch gradient noise (quick mode): variance ∝ 1/B, noise balls shrink with B
and with a decaying rate."""
from experiments.course import minibatch_noise


def test_claims_hold_and_plot(tmp_path):
  claims = minibatch_noise.run(str(tmp_path), quick=True)
  assert len(claims) == 5, sorted(claims)
  failed = {k: c for k, c in claims.items() if not c.holds}
  assert not failed, failed
  assert (tmp_path / 'minibatch_noise.png').stat().st_size > 20_000
