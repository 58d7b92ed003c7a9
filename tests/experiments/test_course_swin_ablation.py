"""The Swin ablation rows on the digits proxy (quick mode): the variants are the
paper's rows and every one trains; no ordering is claimed at this budget."""
from experiments.course import swin_ablation


def test_claims_hold_and_plot(tmp_path):
  claims = swin_ablation.run(str(tmp_path), quick=True)
  assert len(claims) == 1 + 6 + 1
  failed = {k: c for k, c in claims.items() if not c.holds}
  assert not failed, failed
  assert (tmp_path / 'swin_ablation.png').stat().st_size > 20_000
