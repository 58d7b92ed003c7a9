"""L-BFGS full batch vs minibatches on the digits softmax classifier: the
minibatch run stalls higher and is not monotone."""
from experiments.course import lbfgs_minibatch
from tests.experiments import course_claims


def test_claims_hold_and_plot(tmp_path):
  course_claims.assert_quick_claims_hold(lbfgs_minibatch, tmp_path, 4)
