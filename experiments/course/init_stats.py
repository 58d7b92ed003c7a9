r"""Weight initialisation and activation statistics (the course's experiment).

    python -m experiments.course --only=init_stats --out=/tmp/course   # -> init_stats.png

A 6-layer network of width D = 4096 without biases, x_{l+1} = g(x_l W_l),
fed x_0 ~ N(0, 1) of shape [16, D], with W_l drawn by

    σ = 0.01:  W ~ 0.01 · N(0, 1)
    σ = 0.05:  W ~ 0.05 · N(0, 1)
    Xavier:    W ~ N(0, 1) / √D_in            (Glorot & Bengio 2010, fan-in form)
    He:        W ~ N(0, 1) · √(2 / D_in)      (He et al. 2015)

(the flax initialisers the baselines use, `vision.baselines.kernel_init`),
and g = tanh or ReLU. Per layer the activations' mean, std, the fraction of
saturated tanh units (|a| > 0.9, where tanh' < 0.2) and of zero ReLU units. The course's claims,
which `claims()` turns into numbers and tests assert:

* σ = 0.01, tanh: the std shrinks by about σ√D = 0.64 per layer, so deep
  activations collapse towards 0 (and so do the gradients of W).
* σ = 0.05, tanh: σ√D = 3.2, pre-activations are large and the units
  saturate at ±1 (local gradients ≈ 0).
* Xavier + tanh and He + ReLU: the std stays of the same order in every layer.
* Xavier + ReLU: ReLU halves the second moment, so the std shrinks by ≈ 1/√2
  per layer and the activations collapse towards 0.
"""
from __future__ import annotations

import functools
import os
from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from experiments.course.claim import Claim, between, greater, less
from vision import baselines

INITS = ('0.01', '0.05', 'xavier', 'he')
ACTIVATIONS = ('tanh', 'relu')


REFERENCE_WIDTH = 4096


def initializer(name: str, width: int = REFERENCE_WIDTH) -> Callable[..., jax.Array]:
  """The flax initialiser for `name` in INITS.

  The fixed σ are the course's at D = 4096. A narrower network (`width`, for
  quick checks) keeps the per-layer gain σ√D by using σ·√(4096 / width);
  Xavier and He scale with the fan-in by definition."""
  if name == '0.01' and width == REFERENCE_WIDTH:
    return baselines.kernel_init('small')
  if name in ('0.01', '0.05'):
    return nn.initializers.normal(stddev=float(name) * (REFERENCE_WIDTH / width) ** 0.5)
  if name in ('xavier', 'he'):
    return baselines.kernel_init(name)
  raise ValueError(f'init={name!r} is unknown; valid: {", ".join(INITS)}')


@functools.partial(jax.jit, static_argnames=('init', 'activation', 'width', 'depth', 'batch'))
def activations(key: jax.Array, init: str, activation: str, width: int = 4096,
                depth: int = 6, batch: int = 16) -> jax.Array:
  """Activations [depth, batch, width] of the network for one random input.

  Weights are drawn inside the jitted function, one layer at a time, so the
  4096-wide network never holds all its 100M weights at once."""
  g = {'tanh': jnp.tanh, 'relu': jax.nn.relu}[activation]
  key_x, key_w = jax.random.split(key)
  x = jax.random.normal(key_x, (batch, width), jnp.float32)
  outs = []
  for k in jax.random.split(key_w, depth):
    w = initializer(init, width)(k, (width, width), jnp.float32)
    x = g(x @ w)
    outs.append(x)
  return jnp.stack(outs)


def stats(acts: np.ndarray) -> dict[str, np.ndarray]:
  """Per-layer mean, std, saturated (|a| > 0.9) and zero fractions."""
  flat = acts.reshape(acts.shape[0], -1)
  return {'mean': flat.mean(1), 'std': flat.std(1),
          'saturated': (np.abs(flat) > 0.9).mean(1), 'zero': (flat == 0).mean(1)}


def run_all(width: int = 4096, depth: int = 6, batch: int = 16,
            combos: tuple[tuple[str, str], ...] = tuple(
                (i, a) for a in ACTIVATIONS for i in INITS),
            seed: int = 0) -> dict[tuple[str, str], np.ndarray]:
  """{(init, activation): activations [depth, batch, width]}."""
  key = jax.random.PRNGKey(seed)
  return {(i, a): np.asarray(activations(key, i, a, width, depth, batch)) for i, a in combos}


def claims(acts: dict[tuple[str, str], np.ndarray]) -> dict[str, float]:
  """The course's statements as numbers: last-layer std, its ratio to the
  first layer's, and the saturated fraction."""
  out = {}
  for (init, act), a in acts.items():
    s = stats(a)
    name = f'{init}_{act}'
    out[f'{name}_std_first'] = float(s['std'][0])
    out[f'{name}_std_last'] = float(s['std'][-1])
    out[f'{name}_std_ratio'] = float(s['std'][-1] / s['std'][0])
    out[f'{name}_std_monotone_decreasing'] = float(np.all(np.diff(s['std']) < 0))
    out[f'{name}_saturated_min'] = float(s['saturated'].min())
  return out


def plot(acts: dict[tuple[str, str], np.ndarray], path: str) -> None:
  """init_stats.png: one row per (init, activation), one histogram per layer."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  rows = list(acts)
  depth = next(iter(acts.values())).shape[0]
  fig, axes = plt.subplots(len(rows), depth, figsize=(2.3 * depth, 1.7 * len(rows)),
                           squeeze=False)
  for r, (init, act) in enumerate(rows):
    a = acts[(init, act)]
    s = stats(a)
    lim = (-1, 1) if act == 'tanh' else (0, max(1e-6, float(np.percentile(a, 99.5))))
    for l in range(depth):
      ax = axes[r][l]
      ax.hist(a[l].ravel(), bins=50, range=lim, color='C0' if act == 'tanh' else 'C1')
      ax.set_yticks([])
      ax.set_title(f'L{l + 1} μ={s["mean"][l]:.2g} σ={s["std"][l]:.2g}', fontsize=7)
      ax.tick_params(labelsize=6)
    label = f'σ={init}' if init[0].isdigit() else init.capitalize()
    axes[r][0].set_ylabel(f'{label}\n{act}', fontsize=8)
  fig.suptitle(f'activations per layer, {depth} layers × {a.shape[-1]} units', fontsize=10)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def run(out: str, quick: bool = False) -> dict[str, Claim]:
  """init_stats.png and the claims; `quick` runs width 512 (batch 32) instead of 4096."""
  acts = run_all(width=512, batch=32) if quick else run_all()
  plot(acts, os.path.join(out, 'init_stats.png'))
  c = claims(acts)
  sat = {k: stats(a)['saturated'] for k, a in acts.items()}
  return {
      'σ=0.01 tanh: std falls every layer': Claim(
          bool(c['0.01_tanh_std_monotone_decreasing']), 'True',
          c['0.01_tanh_std_monotone_decreasing'] == 1.0),
      'σ=0.01 tanh: last/first std': less(c['0.01_tanh_std_ratio'], 0.15),
      'σ=0.05 tanh: min saturated fraction per layer': greater(float(sat[('0.05', 'tanh')].min()),
                                                               0.5),
      'xavier tanh: last/first std': greater(c['xavier_tanh_std_ratio'], 0.4),
      'he relu: last/first std': between(c['he_relu_std_ratio'], 0.75, 1.33),
      'xavier relu: last/first std ≈ 2^-2.5': between(c['xavier_relu_std_ratio'],
                                                      0.75 * 2 ** -2.5, 1.25 * 2 ** -2.5),
  }
