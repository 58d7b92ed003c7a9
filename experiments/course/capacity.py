r"""Capacity: more hidden units fit more complex data; regularise a big net instead
of shrinking it (deck 003, CS231n "Setting number of layers and their sizes").

    python -m experiments.course --only=capacity --out=/tmp/course   # -> capacity.png

Data: CS231n's 3-class spiral, noisy (50 training points per class, angle
noise 0.5; an independent draw of 300 per class for testing). A 2-layer net
(one hidden ReLU layer of H units, `vision.baselines.MLP`) is fitted by
full-batch Adam (lr 0.01) on softmax cross-entropy + λ Σ W²:

* H = 3, 6, 20, 100 at λ = 1e-5: training accuracy rises with H — a
  3-unit net can only draw a few linear pieces, 100 units fit every arm;
* H = 100 at λ = 1e-5, 1e-3, 3e-3: the stronger penalty smooths the
  decision regions; the course's advice is to keep the large net and tune λ
  rather than use a smaller net, so the regularised large net must test at
  least as well as the small ones.

Claims: train accuracy of H = 3 < H = 20 < ... with H = 100 fitting ≥ 0.97
of the training set; H = 3 stays below 0.8; the best test accuracy among the
λ runs of H = 100 is ≥ the best of H = 3 and H = 6; with λ = 1e-3 the train −
test gap is smaller than with λ = 1e-5. (On this data the penalty narrows
the gap but does not raise H = 100's test accuracy above λ = 1e-5's.)
"""
from __future__ import annotations

import os

import numpy as np

from experiments.course import figure
from experiments.course import toy
from experiments.course.claim import Claim, greater, less
from vision import baselines

WIDTHS = (3, 6, 20, 100)
L2S = (1e-5, 1e-3, 3e-3)
PER_CLASS, NOISE = 50, 0.5
COLOURS = ('tab:red', 'tab:blue', 'tab:green')


def model(width: int) -> baselines.MLP:
  return baselines.MLP(num_classes=3, img_size=(1, 2), depth=1, width=width, activation='relu',
                       weight_init='he')


def run(out: str, quick: bool = False) -> dict[str, Claim]:
  x, y = toy.spiral(PER_CLASS, noise=NOISE)
  xt, yt = toy.spiral(300, noise=NOISE, seed=1)
  steps = 1500 if quick else 5000
  fits = {}
  for w in WIDTHS:
    fits[(w, L2S[0])] = toy.fit(model(w), x, y, steps, l2=L2S[0])[0]
  for l2 in L2S[1:]:
    fits[(100, l2)] = toy.fit(model(100), x, y, steps, l2=l2)[0]
  train = {k: toy.accuracy(model(k[0]), p, x, y) for k, p in fits.items()}
  test = {k: toy.accuracy(model(k[0]), p, xt, yt) for k, p in fits.items()}
  plot(fits, train, test, x, y, os.path.join(out, 'capacity.png'))
  small_best = max(test[(3, L2S[0])], test[(6, L2S[0])])
  big_best = max(test[(100, l2)] for l2 in L2S)
  gap = {l2: train[(100, l2)] - test[(100, l2)] for l2 in L2S}
  rising = [train[(w, L2S[0])] for w in WIDTHS]
  return {
      'train accuracy H=3 (too few units)': less(rising[0], 0.8),
      'train accuracy H=100': greater(rising[-1], 0.97),
      'train accuracy rises with H (3, 6, 20, 100)': Claim(
          ' < '.join(f'{a:.3f}' for a in rising), 'non-decreasing, H=3 < H=100',
          bool(all(b >= a for a, b in zip(rising, rising[1:])) and rising[0] < rising[-1])),
      'best test accuracy H=100 over λ − best of H=3, 6': Claim(
          big_best - small_best, '>= 0', bool(big_best >= small_best)),
      'train−test gap H=100: λ=1e-3 minus λ=1e-5': less(gap[L2S[1]] - gap[L2S[0]], 0.0),
  }


def plot(fits: dict, train: dict, test: dict, x: np.ndarray, y: np.ndarray, path: str) -> None:
  fig, axes = figure.new(len(fits) // 2 + len(fits) % 2, 2, width=3.4, height=3.3)
  for ax, ((w, l2), params) in zip(axes.ravel(), fits.items()):
    g1, g2, pred = toy.grid_predictions(model(w), params)
    ax.contourf(g1, g2, pred, levels=[-0.5, 0.5, 1.5, 2.5], colors=COLOURS, alpha=0.2)
    for k, colour in enumerate(COLOURS):
      ax.scatter(*x[y == k].T, color=colour, s=6, label=f'class {k}')
    ax.set_title(f'H={w}, λ={l2:g}: train {train[(w, l2)]:.2f}, test {test[(w, l2)]:.2f}',
                 fontsize=8)
    ax.set_xlabel('x₁', fontsize=8)
    ax.set_ylabel('x₂', fontsize=8)
    ax.tick_params(labelsize=6)
  for ax in axes.ravel()[len(fits):]:
    ax.axis('off')
  axes[0][0].legend(fontsize=6, loc='lower right')
  figure.save(fig, path, 'decision regions of a 2-layer ReLU net on the 3-class spiral '
              '(regions: predicted class; points: training set)')
