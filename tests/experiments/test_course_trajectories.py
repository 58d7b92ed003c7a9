"""Optimizer trajectories on 2-D surfaces: each of the course's statements as
a number (experiments/course/trajectories.py)."""
import numpy as np
import pytest

from experiments.course import trajectories as tr


@pytest.fixture(scope='module')
def paths():
  return tr.run_all({
      'ill-conditioned quadratic': ('sgd', 'momentum', 'nesterov', 'adagrad', 'rmsprop',
                                    'adam', 'newton'),
      'saddle': ('sgd', 'momentum'),
      'rosenbrock': ('sgd', 'newton', 'lbfgs'),
  })


@pytest.fixture(scope='module')
def c(paths):
  return tr.claims(paths)


def test_sgd_jitters_across_the_steep_direction(c):
  # At lr = 0.038 ≈ 1.9/κ the steep coordinate is multiplied by 1 − 0.038·50 = −0.9.
  assert c['sgd_y_sign_flip_fraction'] == 1.0
  # ... while the shallow one crawls: x shrinks by only 1 − 0.038 per step.
  assert abs(c['sgd_x_progress'] - (1 - 0.962 ** 100)) < 1e-3


def test_momentum_overshoots_and_settles(c):
  assert c['momentum_x_overshoot'] > 0.3  # passed x* = 0 coming from x = −4
  assert c['momentum_final_dist'] < 0.02 < c['sgd_final_dist']
  # Nesterov's look-ahead gradient damps the overshoot.
  assert 0 < c['nesterov_x_overshoot'] < c['momentum_x_overshoot']


def test_adaptive_methods_rescale_each_coordinate(c):
  # Per-coordinate normalisation: the first step moves x and y alike, while
  # SGD's first step follows the gradient (|Δx|/|Δy| = 4 / (50 · 0.5)).
  for name in ('adagrad', 'rmsprop', 'adam'):
    assert c[f'{name}_first_step_ratio'] == pytest.approx(1.0, rel=1e-4)
  assert c['sgd_first_step_ratio'] == pytest.approx(4 / 25, rel=1e-4)


def test_newton_takes_the_direct_route(c, paths):
  assert c['newton_one_step_dist'] < 1e-6  # x − H⁻¹∇f is the minimum of a quadratic
  # On Rosenbrock, Newton and L-BFGS reach (1, 1) while SGD is still in the valley.
  assert c['rosenbrock_newton_steps_to_1e-3'] <= 25
  assert c['rosenbrock_lbfgs_steps_to_1e-3'] <= 40
  assert c['rosenbrock_sgd_final_dist'] > 0.5
  assert np.allclose(paths['rosenbrock']['newton'][-1], [1.0, 1.0], atol=1e-5)


def test_sgd_stalls_at_the_saddle_and_momentum_escapes(c):
  # SGD: y grows by (1 + lr) per step, 1e-4 · 1.01^200 ≈ 7e-4.
  assert c['saddle_sgd_final_abs_y'] == pytest.approx(1e-4 * 1.01 ** 200, rel=0.05)
  assert abs(c['saddle_momentum_final_abs_y'] - 1.0) < 0.05  # reached a minimum y = ±1


def test_plot(paths, tmp_path):
  tr.plot(paths, str(tmp_path / 'trajectories.png'))
  assert (tmp_path / 'trajectories.png').stat().st_size > 30_000
