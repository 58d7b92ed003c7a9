r"""Optimizer trajectories on 2-D surfaces (the course's optimizer animations).

    python -m experiments.course --only=trajectories --out=/tmp/course   # -> trajectories.png

Four surfaces, each with a start point and the optimizers the course shows on
it, run with the `optim` transforms (the same code the trainer uses):

* ill-conditioned quadratic f = ½(x² + κy²), κ = 50: plain SGD at a learning
  rate near 2/κ jitters across the steep y direction (y flips sign every
  step) while crawling along the shallow x; momentum (β = 0.9) overshoots
  the minimum along x and settles; AdaGrad/RMSProp/Adam rescale each
  coordinate, so their first step moves x and y equally; Newton
  (x ← x − H⁻¹∇f) lands on the minimum in one step.
* saddle f = x² + y⁴/4 − y²/2 (saddle at 0, minima at y = ±1), started on
  the ridge y ≈ 1e-4: SGD's y grows by (1 + α) per step and stalls; momentum's
  effective step α/(1 − β) escapes to a minimum.
* Rosenbrock f = (1 − x)² + 100(y − x²)² from (−1.2, 1): first-order
  methods crawl along the curved valley; Newton and L-BFGS (line searches)
  reach (1, 1).
* Beale f = (1.5 − x + xy)² + (2.25 − x + xy²)² + (2.625 − x + xy³)² from
  (1, 1.5), minimum (3, 0.5).

`run_all()` returns every path; `claims(paths)` turns the statements above
into numbers that tests/experiments/test_course_trajectories.py asserts.
"""
from __future__ import annotations

import dataclasses
import functools
import os
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from experiments.course.claim import Claim, between, greater, less
import optim

Array = jax.Array

KAPPA = 50.0


def quadratic(p: Array) -> Array:
  return 0.5 * (p[0] ** 2 + KAPPA * p[1] ** 2)


def saddle(p: Array) -> Array:
  return p[0] ** 2 + 0.25 * p[1] ** 4 - 0.5 * p[1] ** 2


def rosenbrock(p: Array) -> Array:
  return (1.0 - p[0]) ** 2 + 100.0 * (p[1] - p[0] ** 2) ** 2


def beale(p: Array) -> Array:
  x, y = p[0], p[1]
  return ((1.5 - x + x * y) ** 2 + (2.25 - x + x * y ** 2) ** 2
          + (2.625 - x + x * y ** 3) ** 2)


@dataclasses.dataclass(frozen=True)
class Surface:
  fn: Callable[[Array], Array]
  start: tuple[float, float]
  minimum: tuple[float, float]
  box: tuple[float, float, float, float]  # xmin, xmax, ymin, ymax for the plot
  steps: int
  runs: tuple[tuple[str, str, tuple[tuple[str, Any], ...]], ...]  # label, name, hparams


SURFACES: dict[str, Surface] = {
    'ill-conditioned quadratic': Surface(
        quadratic, (-4.0, 0.5), (0.0, 0.0), (-4.5, 1.5, -0.8, 0.8), 100, (
            ('sgd', 'sgd', (('learning_rate', 0.038),)),
            ('momentum', 'momentum', (('learning_rate', 0.01),)),
            ('nesterov', 'nesterov', (('learning_rate', 0.01),)),
            ('adagrad', 'adagrad', (('learning_rate', 0.5),)),
            ('rmsprop', 'rmsprop', (('learning_rate', 0.05),)),
            ('adam', 'adam', (('learning_rate', 0.1),)),
            ('newton', 'newton', (('linesearch', None), ('learning_rate', 1.0))),
        )),
    'saddle': Surface(
        saddle, (1.0, 1e-4), (0.0, 1.0), (-1.2, 1.2, -1.5, 1.5), 200, (
            ('sgd', 'sgd', (('learning_rate', 0.01),)),
            ('momentum', 'momentum', (('learning_rate', 0.01),)),
            ('nesterov', 'nesterov', (('learning_rate', 0.01),)),
            ('rmsprop', 'rmsprop', (('learning_rate', 0.01),)),
            ('adam', 'adam', (('learning_rate', 0.01),)),
        )),
    'rosenbrock': Surface(
        rosenbrock, (-1.2, 1.0), (1.0, 1.0), (-2.0, 2.0, -1.0, 3.0), 500, (
            ('sgd', 'sgd', (('learning_rate', 1e-3),)),
            ('momentum', 'momentum', (('learning_rate', 1e-4),)),
            ('adam', 'adam', (('learning_rate', 0.05),)),
            ('newton', 'newton', ()),
            ('lbfgs', 'lbfgs', ()),
        )),
    'beale': Surface(
        beale, (1.0, 1.5), (3.0, 0.5), (-0.5, 4.0, -1.0, 2.0), 500, (
            ('sgd', 'sgd', (('learning_rate', 1e-3),)),
            ('momentum', 'momentum', (('learning_rate', 1e-3),)),
            ('adagrad', 'adagrad', (('learning_rate', 0.5),)),
            ('rmsprop', 'rmsprop', (('learning_rate', 0.01),)),
            ('adam', 'adam', (('learning_rate', 0.05),)),
            ('lbfgs', 'lbfgs', ()),
        )),
}


@functools.partial(jax.jit, static_argnames=('fn', 'name', 'hparams', 'steps'))
def _trajectory(fn: Callable[[Array], Array], name: str, hparams: tuple, steps: int,
                start: Array) -> Array:
  tx = optim.create(name, **dict(hparams))
  value_and_grad = jax.value_and_grad(fn)

  def step(carry, _):
    p, state = carry
    value, grad = value_and_grad(p)
    if isinstance(tx, optax_extra()):
      updates, state = tx.update(grad, state, p, value=value, grad=grad, value_fn=fn)
    else:
      updates, state = tx.update(grad, state, p)
    p = p + updates
    return (p, state), p

  _, path = jax.lax.scan(step, (start, tx.init(start)), None, length=steps)
  return jnp.concatenate([start[None], path])


def optax_extra() -> type:
  import optax  # pylint: disable=g-import-not-at-top
  return optax.GradientTransformationExtraArgs


def trajectory(surface: str, label: str) -> np.ndarray:
  """The path [steps + 1, 2] of optimizer `label` on `surface`."""
  s = SURFACES[surface]
  run = {r[0]: r for r in s.runs}[label]
  return np.asarray(_trajectory(s.fn, run[1], run[2], s.steps,
                                jnp.asarray(s.start, jnp.float32)))


def run_all(selection: dict[str, tuple[str, ...]] | None = None
            ) -> dict[str, dict[str, np.ndarray]]:
  """{surface: {optimizer label: path}} for every configured run, or for the
  {surface: labels} in `selection`."""
  if selection is None:
    selection = {name: tuple(r[0] for r in s.runs) for name, s in SURFACES.items()}
  return {name: {label: trajectory(name, label) for label in labels}
          for name, labels in selection.items()}


def claims(paths: dict[str, dict[str, np.ndarray]]) -> dict[str, float]:
  """The course's statements as numbers (see the module docstring)."""
  out: dict[str, float] = {}
  if 'ill-conditioned quadratic' in paths:
    q = paths['ill-conditioned quadratic']
    sgd_y = q['sgd'][:, 1]
    out['sgd_y_sign_flip_fraction'] = float(np.mean(np.sign(sgd_y[1:]) != np.sign(sgd_y[:-1])))
    out['sgd_x_progress'] = float(1 - abs(q['sgd'][-1, 0]) / 4.0)
    out['momentum_x_overshoot'] = float(q['momentum'][:, 0].max())  # > 0: passed x* = 0
    out['momentum_final_dist'] = float(np.linalg.norm(q['momentum'][-1]))
    out['sgd_final_dist'] = float(np.linalg.norm(q['sgd'][-1]))
    out['nesterov_x_overshoot'] = float(q['nesterov'][:, 0].max())
    for name in ('adagrad', 'rmsprop', 'adam'):
      d = np.abs(q[name][1] - q[name][0])
      out[f'{name}_first_step_ratio'] = float(d[0] / d[1])  # |Δx| / |Δy|
    d = np.abs(q['sgd'][1] - q['sgd'][0])
    out['sgd_first_step_ratio'] = float(d[0] / d[1])
    out['newton_one_step_dist'] = float(np.linalg.norm(q['newton'][1]))
  if 'saddle' in paths:
    s = paths['saddle']
    for name in s:
      out[f'saddle_{name}_final_abs_y'] = float(abs(s[name][-1, 1]))
  for surface in ('rosenbrock', 'beale'):
    if surface in paths:
      target = np.asarray(SURFACES[surface].minimum)
      for name, path in paths[surface].items():
        dist = np.linalg.norm(path - target, axis=1)
        out[f'{surface}_{name}_final_dist'] = float(dist[-1])
        hit = np.nonzero(dist < 1e-3)[0]
        out[f'{surface}_{name}_steps_to_1e-3'] = float(hit[0]) if hit.size else float('inf')
  return out


def plot(paths: dict[str, dict[str, np.ndarray]], path: str) -> None:
  """trajectories.png: contours of each surface with every optimizer's path."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, axes = plt.subplots(1, len(paths), figsize=(5.2 * len(paths), 4.6), squeeze=False)
  for ax, (name, runs) in zip(axes[0], paths.items()):
    s = SURFACES[name]
    xs = np.linspace(s.box[0], s.box[1], 200)
    ys = np.linspace(s.box[2], s.box[3], 200)
    gx, gy = np.meshgrid(xs, ys)
    z = np.asarray(s.fn(np.stack([gx, gy])))  # the surfaces are plain arithmetic: numpy works
    z = np.log1p(z - z.min())
    ax.contour(gx, gy, z, levels=25, cmap='Greys', linewidths=0.6)
    for label, p in runs.items():
      ax.plot(p[:, 0], p[:, 1], '.-', ms=2, lw=1.1, label=label)
    ax.plot(*s.start, 'ko', ms=5)
    ax.plot(*s.minimum, 'r*', ms=10)
    ax.set_xlim(s.box[0], s.box[1])
    ax.set_ylim(s.box[2], s.box[3])
    ax.set_title(f'{name} ({s.steps} steps)')
    ax.legend(fontsize=7, loc='lower right')
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def run(out: str, quick: bool = False) -> dict[str, Claim]:
  """Every surface's paths, trajectories.png, and the course's statements as claims
  (the paths are cheap: `quick` changes nothing)."""
  del quick
  paths = run_all()
  plot(paths, os.path.join(out, 'trajectories.png'))
  c = claims(paths)
  return {
      'sgd: steep coordinate flips sign every step': Claim(
          c['sgd_y_sign_flip_fraction'], '= 1', c['sgd_y_sign_flip_fraction'] == 1.0),
      'momentum: overshoots x* along x': greater(c['momentum_x_overshoot'], 0.3),
      'momentum: ends nearer x* than sgd': less(c['momentum_final_dist'],
                                                 c['sgd_final_dist'], ' (sgd)'),
      'nesterov: overshoots less than momentum': between(
          c['nesterov_x_overshoot'], 0.0, c['momentum_x_overshoot']),
      'adam: first step |dx|/|dy| = 1': between(c['adam_first_step_ratio'], 1 - 1e-4, 1 + 1e-4),
      'sgd: first step |dx|/|dy| = 4/25': between(c['sgd_first_step_ratio'], 0.16 - 1e-4,
                                                  0.16 + 1e-4),
      'newton: one step to a quadratic minimum': less(c['newton_one_step_dist'], 1e-6),
      'rosenbrock: newton steps to 1e-3': Claim(
          c['rosenbrock_newton_steps_to_1e-3'], '<= 25',
          c['rosenbrock_newton_steps_to_1e-3'] <= 25),
      'rosenbrock: sgd still in the valley': greater(c['rosenbrock_sgd_final_dist'], 0.5),
      'saddle: sgd |y| after 200 steps = 1e-4·1.01^200': between(
          c['saddle_sgd_final_abs_y'], 0.95e-4 * 1.01 ** 200, 1.05e-4 * 1.01 ** 200),
      'saddle: momentum escapes to y = ±1': between(c['saddle_momentum_final_abs_y'], 0.95, 1.05),
  }
