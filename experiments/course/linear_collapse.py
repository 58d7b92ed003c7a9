r"""Without a nonlinearity a deep MLP is one linear map (deck 001).

    python -m experiments.course --only=linear_collapse --out=/tmp/course
    # -> linear_collapse.png

With f = identity, `depth` hidden layers compose to

    s = (((x W₁ + b₁) W₂ + b₂) … ) W_out + b_out = x W + b,
    W = W₁ W₂ ⋯ W_out,  b = (…(b₁ W₂ + b₂) …) W_out + b_out,

so the net can only draw a linear decision boundary however deep it is.
On the XOR set (label 1 where x₁x₂ > 0, 400 points in [−1, 1]²; no line
does better than ≈ 0.5–0.7) a 4-hidden-layer MLP of 32 units
(`vision.baselines.MLP`) is trained with activation 'identity' and 'relu'
(full-batch Adam, lr 0.01).

Claims: the trained identity net equals the collapsed affine map xW + b
(max |difference| < 1e-4 of the logit scale); its training accuracy is no
better than a linear classifier's (logistic regression trained the same
way, +0.02) and below 0.8; the ReLU net separates the set (≥ 0.97).
"""
from __future__ import annotations

import os
from typing import Any

import numpy as np

from experiments.course import figure
from experiments.course import toy
from experiments.course.claim import Claim, greater, less
from vision import baselines

DEPTH, WIDTH = 4, 32


def model(activation: str, depth: int = DEPTH) -> baselines.MLP:
  return baselines.MLP(num_classes=2, img_size=(1, 2), depth=depth, width=WIDTH,
                       activation=activation, weight_init='xavier')


def collapse(params: Any, depth: int = DEPTH) -> tuple[np.ndarray, np.ndarray]:
  """(W, b) of the single affine map an identity-activation MLP computes."""
  w = np.eye(2)
  b = np.zeros(2)
  for name in [f'fc{i}' for i in range(depth)] + ['head']:
    k, c = np.asarray(params[name]['kernel'], np.float64), np.asarray(params[name]['bias'])
    w, b = w @ k, b @ k + c
  return w, b


def run(out: str, quick: bool = False) -> dict[str, Claim]:
  x, y = toy.xor(400)
  steps = 1000 if quick else 3000
  fits = {act: toy.fit(model(act), x, y, steps)[0] for act in ('identity', 'relu')}
  linear = baselines.MLP(num_classes=2, img_size=(1, 2), depth=0)
  fits['linear classifier'] = toy.fit(linear, x, y, steps)[0]
  models = {'identity': model('identity'), 'relu': model('relu'), 'linear classifier': linear}
  acc = {k: toy.accuracy(models[k], p, x, y) for k, p in fits.items()}
  w, b = collapse(fits['identity'])
  logits = np.asarray(models['identity'].apply({'params': fits['identity']}, toy.as_images(x)))
  err = float(np.abs(logits - (x @ w + b)).max() / np.abs(logits).max())
  plot(models, fits, acc, x, y, os.path.join(out, 'linear_collapse.png'))
  return {
      'identity net − collapsed xW + b, max rel. difference': less(err, 1e-4),
      f'identity net ({DEPTH} hidden layers) train accuracy': less(acc['identity'], 0.8),
      'identity net − linear classifier accuracy': less(
          acc['identity'] - acc['linear classifier'], 0.02),
      'relu net train accuracy': greater(acc['relu'], 0.97),
  }


def plot(models: dict, fits: dict, acc: dict, x: np.ndarray, y: np.ndarray, path: str) -> None:
  fig, axes = figure.new(3, width=3.8, height=3.6)
  for ax, (label, params) in zip(axes[0], fits.items()):
    g1, g2, pred = toy.grid_predictions(models[label], params)
    ax.contourf(g1, g2, pred, levels=[-0.5, 0.5, 1.5], colors=('tab:red', 'tab:blue'), alpha=0.2)
    for k, colour in enumerate(('tab:red', 'tab:blue')):
      ax.scatter(*x[y == k].T, color=colour, s=5, label=f'class {k}')
    name = f'{DEPTH}×{WIDTH} {label}' if label != 'linear classifier' else label
    ax.set_title(f'{name}: train acc {acc[label]:.2f}', fontsize=9)
    ax.set_xlabel('x₁')
    ax.set_ylabel('x₂')
  axes[0][0].legend(fontsize=7, loc='lower left')
  figure.save(fig, path, 'XOR: a deep net without nonlinearity is one linear map')
