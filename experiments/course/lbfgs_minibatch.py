r"""L-BFGS needs full batches (deck 000: "does not transfer very well to the mini-batch setting").

    python -m experiments.course --only=lbfgs_minibatch --out=/tmp/course
    # -> lbfgs_minibatch.png

The softmax classifier on the digits (1,437 training images, pixels
standardised, L2 penalty λ = 1e-3) is trained by the same L-BFGS transform
(`optim.create('lbfgs')`: memory 10, strong-Wolfe line search) twice:

* full batch: every iteration evaluates the loss, its gradient and the line
  search on all the data;
* minibatch: iteration k uses batch Bₖ (64 examples, reshuffled each epoch)
  for the gradient, for the curvature pair yₖ = ∇L_{Bₖ₊₁}(θₖ₊₁) − ∇L_{Bₖ}(θₖ)
  and for the line search. yₖ now mixes the change in θ with the change in
  the batch, so the curvature estimate (and its quasi-Newton direction)
  is corrupted by sampling noise, and the line search fits each batch.

Both runs get the same budget of examples (15 epochs) (each minibatch iteration
costs 64/1437 of a full one). The minibatch run drops faster in the first
epoch, then stalls in a noisy band above the full-batch optimum. Claims:
over its last epoch the minibatch run's full-data loss averages > 1.1× the
full-batch run's final loss; that loss rises on > 10 % of its iterations and
spikes (max/min over its second half > 1.3); the full-batch loss never
rises.
"""
from __future__ import annotations

import functools
import os

import jax
import jax.numpy as jnp
import numpy as np

from experiments.course import figure
from experiments.course.claim import Claim, greater
from experiments.data import digits
import optim

L2 = 1e-3
BATCH = 64
EPOCHS = 15  # full batch has converged (‖∇L‖ small) by then


def data() -> tuple[jax.Array, jax.Array]:
  split = digits.load('train')
  x = split.images.reshape(len(split.labels), -1)
  x = (x - x.mean(0)) / (x.std(0) + 1e-3)
  return jnp.asarray(x, jnp.float32), jnp.asarray(split.labels)


def loss(theta: jax.Array, x: jax.Array, y: jax.Array) -> jax.Array:
  """Mean softmax cross-entropy of scores x W + b plus λ‖W‖²; θ = [W; b] flat."""
  w = theta[:-10].reshape(x.shape[1], 10)
  logits = x @ w + theta[-10:]
  logp = jax.nn.log_softmax(logits)
  return -jnp.mean(jnp.take_along_axis(logp, y[:, None], 1)) + L2 * jnp.sum(w ** 2)


@functools.partial(jax.jit, static_argnames=('batches',))
def train(x: jax.Array, y: jax.Array, order: jax.Array, batches: bool) -> jax.Array:
  """Full-data loss after each iteration; `order` [iterations, batch] indexes
  each iteration's examples (`batches=False`: all of them every time)."""
  tx = optim.create('lbfgs')
  theta0 = jnp.zeros(x.shape[1] * 10 + 10)

  def step(carry, idx):
    theta, state = carry
    xb, yb = (x[idx], y[idx]) if batches else (x, y)
    fn = lambda t: loss(t, xb, yb)  # noqa: E731
    value, grad = jax.value_and_grad(fn)(theta)
    updates, state = tx.update(grad, state, theta, value=value, grad=grad, value_fn=fn)
    theta = theta + updates
    return (theta, state), loss(theta, x, y)

  _, full = jax.lax.scan(step, (theta0, tx.init(theta0)), order)
  return jnp.concatenate([loss(theta0, x, y)[None], full])


def run(out: str, quick: bool = False) -> dict[str, Claim]:
  x, y = data()
  n = len(y)
  del quick  # seconds either way
  epochs = EPOCHS
  rng = np.random.default_rng(0)
  per_epoch = n // BATCH
  order = np.concatenate([rng.permutation(n)[:per_epoch * BATCH].reshape(per_epoch, BATCH)
                          for _ in range(epochs)])
  full = np.asarray(train(x, y, jnp.zeros((epochs, 1), jnp.int32), False))
  mini = np.asarray(train(x, y, jnp.asarray(order), True))
  plot(full, mini, per_epoch, os.path.join(out, 'lbfgs_minibatch.png'))
  last = mini[-per_epoch:]
  mini_end = float(last.mean()) if np.all(np.isfinite(last)) else np.inf
  rises = float(np.mean(np.diff(mini) > 0))
  half = mini[len(mini) // 2:]
  return {
      'last-epoch full-data loss, minibatch / full batch': greater(mini_end / full[-1], 1.1),
      'minibatch: max/min full loss over the second half': greater(
          float(half.max() / half.min()) if np.all(np.isfinite(half)) else np.inf, 1.3),
      'minibatch: fraction of iterations where the full loss rises': greater(rises, 0.1),
      'full batch: iterations where the loss rises': Claim(
          int(np.sum(np.diff(full) > 1e-7)), '= 0', bool(np.all(np.diff(full) <= 1e-7))),
  }


def plot(full: np.ndarray, mini: np.ndarray, per_epoch: int, path: str) -> None:
  fig, axes = figure.new(1, width=6.5)
  ax = axes[0][0]
  ax.plot(np.arange(len(full)), full, 'o-', ms=3,
          label='L-BFGS, full batch (1 iteration = 1 epoch)')
  ax.plot(np.arange(len(mini)) / per_epoch, mini, lw=0.8,
          label=f'L-BFGS, minibatches of {BATCH}')
  ax.set_yscale('log')
  ax.set_xlabel('epochs (examples seen / 1437)')
  ax.set_ylabel('training loss on all data (cross-entropy + λ‖W‖²)')
  ax.set_title('L-BFGS on the digits softmax classifier')
  ax.grid(alpha=0.3, which='both')
  ax.legend()
  figure.save(fig, path)
