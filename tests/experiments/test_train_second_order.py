"""Second-order methods from the trainer: every minimiser from lbfgs_digits.py on the command
line, line searches by name, and Gauss-Newton / Levenberg-Marquardt on a least-squares
objective matching `optim.least_squares` on the same residuals."""
from __future__ import annotations

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import checkpointing
from experiments import data
from experiments import metrics
from experiments import train
from experiments.configs import lbfgs_digits
from experiments.configs import least_squares_digits
import optim

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _run(config, workdir, devices=None):
  setup = train.build(config, devices=devices)
  train.train_and_evaluate(setup, str(workdir), progress_stream=open(os.devnull, 'w'))
  return setup, metrics.read_jsonl(os.path.join(workdir, metrics.METRICS_FILE))


@pytest.mark.parametrize('name', ['newton', 'bfgs', 'newton_cg'])
def test_second_order_name_from_the_command_line(tmp_path, name):
  workdir = tmp_path / name
  proc = subprocess.run(
      [sys.executable, '-m', 'experiments.main',
       '--config=experiments/configs/lbfgs_digits.py:steps=3',
       f'--config.optimizer.name={name}', f'--workdir={workdir}'],
      cwd=ROOT, capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-2000:]
  records = metrics.read_jsonl(str(workdir / metrics.METRICS_FILE))
  objective = [r['train/objective'] for r in records if 'train/objective' in r]
  assert len(objective) == 3 and objective[-1] < objective[0], objective
  assert records[-1]['val/accuracy'] > 0.85


@pytest.mark.parametrize('linesearch', ['zoom', 'backtracking', 'exact'])
def test_line_search_by_name(tmp_path, linesearch):
  config = lbfgs_digits.get_config('steps=3')
  config.eval_every = 0
  config.optimizer.linesearch = linesearch
  _, records = _run(config, tmp_path / linesearch)
  objective = np.array([r['train/objective'] for r in records])
  assert np.all(np.diff(objective) < 0), objective  # every accepted step decreases J


def test_least_squares_optimizers_need_a_sum_of_squares_over_the_full_batch():
  config = least_squares_digits.get_config('runlocal')
  config.loss = 'softmax_xent'
  with pytest.raises(ValueError, match=r"needs task=classification with loss=l2"):
    train.build(config)
  config = least_squares_digits.get_config('runlocal')
  config.reg.kind = 'l1'
  with pytest.raises(ValueError, match=r"reg.kind='l1' with a least-squares optimizer"):
    train.build(config)
  config = least_squares_digits.get_config('runlocal')
  config.full_batch = False
  config.batch_size = 64
  with pytest.raises(ValueError, match='set full_batch=True'):
    train.build(config)


@pytest.mark.parametrize('method', ['levenberg_marquardt', 'gauss_newton'])
def test_least_squares_trainer_matches_optim_least_squares(tmp_path, method):
  """3 trainer steps (full batch, one device: every device would compute the same step) =
  3 iterations of optim.least_squares on r(θ) = [√(1/N)(f_θ(x_i) − onehot(y_i))]_i ++
  √(2λ)·kernels, from the same start."""
  steps = 3
  config = least_squares_digits.get_config(f'model=mlp,optimizer={method},steps={steps}')
  config.eval_every = 0
  devices = jax.local_devices()[:1]
  setup = train.build(config, devices=devices)
  start = train.init_state(setup, jax.random.split(jax.random.PRNGKey(config.seed))[0])
  _, records = _run(config, tmp_path / method, devices)
  final = checkpointing.Checkpointer(str(tmp_path / method)).restore(steps, start).params

  whole = next(data.make_train_iterator(config.data, 0, 0, full_batch=True))
  keep = whole['mask'][0]
  x, y = jnp.asarray(whole['image'][0][keep]), jnp.asarray(whole['label'][0][keep])
  assert len(y) == 1437
  strength = config.reg.strength

  def residual_fn(params):
    logits = setup.module.apply({'params': params}, x, train=False)
    r = (logits - jax.nn.one_hot(y, 10)) / np.sqrt(len(y))
    kernels = [params[k]['kernel'] for k in sorted(params)]
    return jnp.concatenate([jnp.ravel(r)] + [np.sqrt(2 * strength) * jnp.ravel(w)
                                             for w in kernels])

  res = optim.least_squares(residual_fn, start.params, method=method, maxiter=steps, tol=0.0,
                            xtol=0.0, history=True)
  assert int(res.iterations) == steps
  # The cost trajectories agree: the trainer logs J at the start of each step, i.e. the
  # cost after the previous update; then the cost at the final parameters.
  objective = np.array([r['train/objective'] for r in records])
  np.testing.assert_allclose(objective, np.asarray(res.history['fun'][:steps]), rtol=1e-4)
  np.testing.assert_allclose(0.5 * np.sum(np.square(residual_fn(final))), res.fun, rtol=1e-4)
  assert res.fun < 0.5 * objective[0], (objective, res.fun)
  # So do the parameters, up to float32 round-off amplified by the normal equations'
  # conditioning (the two programs sum in different orders).
  for got, want in zip(jax.tree.leaves(final), jax.tree.leaves(res.x)):
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-4)
