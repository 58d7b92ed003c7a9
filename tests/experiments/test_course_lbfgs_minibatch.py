"""L-BFGS full batch vs minibatches on the digits softmax classifier: the
minibatch run stalls higher and is not monotone."""
from experiments.course import lbfgs_minibatch


def test_claims_hold_and_plot(tmp_path):
  claims = lbfgs_minibatch.run(str(tmp_path), quick=True)
  assert len(claims) == 4, sorted(claims)
  failed = {k: c for k, c in claims.items() if not c.holds}
  assert not failed, failed
  assert (tmp_path / 'lbfgs_minibatch.png').stat().st_size > 20_000
