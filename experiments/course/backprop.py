r"""Backpropagation on a computational graph, by hand, checked against jax.grad (deck 003).

    python -m experiments.course --only=backprop --out=/tmp/course   # -> backprop.png

A computational graph evaluates f node by node (forward) and then applies
the chain rule backwards: each node receives the upstream gradient ∂L/∂out
and returns its inputs' gradients, the vector-Jacobian product (VJP)
∂L/∂in = (∂out/∂in)ᵀ ∂L/∂out. The course's small example f = (x + y)·z at
x = −2, y = 5, z = −4: q = x + y = 3, f = −12, ∂f/∂z = q = 3, ∂f/∂q = z = −4,
∂f/∂x = ∂f/∂y = −4 (an add gate copies its upstream gradient).

The 2-layer net L(W₁, b₁, W₂, b₂) = mean softmax cross-entropy of
s = ReLU(X W₁ + b₁) W₂ + b₂, in two hand-written forms (numpy, float64):

* flat: one function, forward then the backward pass line by line
  (dS = (P − Y)/N; dW₂ = Hᵀ dS; db₂ = Σ dS; dH = dS W₂ᵀ; dZ = dH ⊙ [Z > 0];
  dW₁ = Xᵀ dZ; db₁ = Σ dZ);
* modular: gates with `forward` and `backward` (MatMul, AddBias, ReLU,
  SoftmaxCrossEntropy), chained into a graph; the backward pass walks the
  gates in reverse, each applying only its own local VJP.

Claims (float64): both forms match `jax.grad` to < 1e-12 relative error on
every parameter; each gate's hand VJP matches `jax.vjp` of its forward on a
random upstream gradient; the small example's gradients are exactly
(−4, −4, 3).
"""
from __future__ import annotations

import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from experiments.course import figure
from experiments.course.claim import Claim, less


def net_data(n: int = 32, d: int = 10, h: int = 16, k: int = 5, seed: int = 0
             ) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
  rng = np.random.default_rng(seed)
  params = {'W1': rng.normal(size=(d, h)) / np.sqrt(d), 'b1': 0.1 * rng.normal(size=h),
            'W2': rng.normal(size=(h, k)) / np.sqrt(h), 'b2': 0.1 * rng.normal(size=k)}
  return params, rng.normal(size=(n, d)), rng.integers(0, k, n)


def _softmax_xent(s: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
  """(mean cross-entropy, probabilities) of scores s [N, K]."""
  z = s - s.max(1, keepdims=True)
  p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
  return float(-np.mean(np.log(p[np.arange(len(y)), y]))), p


def flat(params: dict[str, np.ndarray], x: np.ndarray, y: np.ndarray
         ) -> tuple[float, dict[str, np.ndarray]]:
  """Loss and gradients of the 2-layer net, forward and backward written out."""
  z = x @ params['W1'] + params['b1']
  hidden = np.maximum(z, 0)
  s = hidden @ params['W2'] + params['b2']
  loss, p = _softmax_xent(s, y)
  ds = p.copy()
  ds[np.arange(len(y)), y] -= 1
  ds /= len(y)
  grads = {'W2': hidden.T @ ds, 'b2': ds.sum(0)}
  dz = (ds @ params['W2'].T) * (z > 0)
  grads.update(W1=x.T @ dz, b1=dz.sum(0))
  return loss, grads


class MatMul:
  """out = a @ w; VJP: da = g wᵀ, dw = aᵀ g."""

  def forward(self, a, w):
    self.a, self.w = a, w
    return a @ w

  def backward(self, g):
    return g @ self.w.T, self.a.T @ g


class AddBias:
  """out = a + b (b broadcast over rows); VJP: da = g, db = Σ_rows g."""

  def forward(self, a, b):
    return a + b

  def backward(self, g):
    return g, g.sum(0)


class ReLU:
  """out = max(a, 0); VJP: da = g ⊙ [a > 0]."""

  def forward(self, a):
    self.mask = a > 0
    return a * self.mask

  def backward(self, g):
    return (g * self.mask,)


class SoftmaxCrossEntropy:
  """out = mean_i −log softmax(s_i)[y_i]; VJP: ds = g (P − Y)/N."""

  def forward(self, s, y):
    loss, self.p = _softmax_xent(s, y)
    self.y = y
    return loss

  def backward(self, g):
    ds = self.p.copy()
    ds[np.arange(len(self.y)), self.y] -= 1
    return (g * ds / len(self.y),)


def modular(params: dict[str, np.ndarray], x: np.ndarray, y: np.ndarray
            ) -> tuple[float, dict[str, np.ndarray]]:
  """The same net as a chain of gates; backward applies each gate's VJP in reverse."""
  mm1, add1, relu, mm2, add2, xent = MatMul(), AddBias(), ReLU(), MatMul(), AddBias(), \
      SoftmaxCrossEntropy()
  loss = xent.forward(add2.forward(mm2.forward(relu.forward(add1.forward(
      mm1.forward(x, params['W1']), params['b1'])), params['W2']), params['b2']), y)
  (ds,) = xent.backward(1.0)
  dmm2, db2 = add2.backward(ds)
  dh, dw2 = mm2.backward(dmm2)
  (dz,) = relu.backward(dh)
  dmm1, db1 = add1.backward(dz)
  _, dw1 = mm1.backward(dmm1)
  return loss, {'W1': dw1, 'b1': db1, 'W2': dw2, 'b2': db2}


def jax_loss(params: dict[str, Any], x: Any, y: Any) -> jax.Array:
  hidden = jax.nn.relu(x @ params['W1'] + params['b1'])
  s = hidden @ params['W2'] + params['b2']
  return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(s), y[:, None], 1))


def rel_err(a: np.ndarray, b: np.ndarray) -> float:
  return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-300))


def gate_vjp_errors(seed: int = 1) -> dict[str, float]:
  """max relative error of each gate's hand VJP against jax.vjp of its forward."""
  rng = np.random.default_rng(seed)
  a, w, b = rng.normal(size=(6, 4)), rng.normal(size=(4, 3)), rng.normal(size=3)
  y = rng.integers(0, 3, 6)
  g = rng.normal(size=(6, 3))
  out = {}
  gate = MatMul()
  gate.forward(a, w)
  ref = jax.vjp(lambda a_, w_: a_ @ w_, a, w)[1](g)
  out['MatMul'] = max(rel_err(h, np.asarray(r)) for h, r in zip(gate.backward(g), ref))
  ref = jax.vjp(lambda a_, b_: a_ + b_, a[:, :3], b)[1](g)
  out['AddBias'] = max(rel_err(h, np.asarray(r)) for h, r in zip(AddBias().backward(g), ref))
  gate = ReLU()
  gate.forward(a[:, :3])
  ref = jax.vjp(jax.nn.relu, a[:, :3])[1](g)
  out['ReLU'] = rel_err(gate.backward(g)[0], np.asarray(ref[0]))
  gate = SoftmaxCrossEntropy()
  gate.forward(g, y)
  ref = jax.vjp(lambda s: -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(s), y[:, None], 1)),
                g)[1](jnp.float64(0.7))
  out['SoftmaxCrossEntropy'] = rel_err(gate.backward(0.7)[0], np.asarray(ref[0]))
  return out


def small_graph() -> dict[str, float]:
  """Forward values and hand gradients of f = (x + y) z at (−2, 5, −4)."""
  x, y, z = -2.0, 5.0, -4.0
  q = x + y
  f = q * z
  df_dq, df_dz = z, q
  return {'x': x, 'y': y, 'z': z, 'q': q, 'f': f, 'df/dx': df_dq, 'df/dy': df_dq,
          'df/dz': df_dz, 'df/dq': df_dq}


def run(out: str, quick: bool = False) -> dict[str, Claim]:
  del quick  # milliseconds either way
  with jax.enable_x64(True):
    params, x, y = net_data()
    ref = jax.grad(jax_loss)(params, x, y)
    errs = {}
    for form, fn in (('flat', flat), ('modular', modular)):
      _, grads = fn(params, x, y)
      errs[form] = {k: rel_err(grads[k], np.asarray(ref[k])) for k in params}
    gates = gate_vjp_errors()
    g = small_graph()
    auto = jax.grad(lambda v: (v[0] + v[1]) * v[2])(jnp.asarray([g['x'], g['y'], g['z']]))
  plot(g, errs, gates, os.path.join(out, 'backprop.png'))
  claims = {f'{form} backprop vs jax.grad, max rel. error': less(max(e.values()), 1e-12)
            for form, e in errs.items()}
  claims['gate VJPs vs jax.vjp, max rel. error'] = less(max(gates.values()), 1e-12)
  hand = (g['df/dx'], g['df/dy'], g['df/dz'])
  claims['(x+y)z at (−2, 5, −4): hand gradients'] = Claim(
      str(hand), '(-4.0, -4.0, 3.0) = jax.grad',
      hand == (-4.0, -4.0, 3.0) and tuple(float(v) for v in auto) == hand)
  return claims


def plot(g: dict[str, float], errs: dict[str, dict[str, float]], gates: dict[str, float],
         path: str) -> None:
  fig, axes = figure.new(2, width=5.6, height=3.8)
  ax = axes[0][0]
  nodes = {'x': (0, 2), 'y': (0, 0.6), 'z': (0, -0.8), 'q': (1.6, 1.3), 'f': (3.2, 0.3)}
  ops = {'q': '+', 'f': '×'}
  for a, b in (('x', 'q'), ('y', 'q'), ('q', 'f'), ('z', 'f')):
    ax.annotate('', xy=nodes[b], xytext=nodes[a],
                arrowprops=dict(arrowstyle='->', color='grey', shrinkA=16, shrinkB=16))
  for name, (px, py) in nodes.items():
    label = ops.get(name, name)
    ax.text(px, py, label, ha='center', va='center', fontsize=12,
            bbox=dict(boxstyle='circle', fc='white', ec='black'))
    grad = 1.0 if name == 'f' else g[f'df/d{name}']
    ax.text(px, py + 0.42, f'{name} = {g[name]:g}', ha='center', color='tab:green', fontsize=9)
    ax.text(px, py - 0.48, f'∂f/∂{name} = {grad:g}', ha='center', color='tab:red', fontsize=9)
  ax.set_xlim(-0.7, 3.9)
  ax.set_ylim(-1.6, 2.8)
  ax.axis('off')
  ax.set_title('f = (x + y)·z: forward values (green), gradients (red)', fontsize=9)
  ax = axes[0][1]
  names = list(next(iter(errs.values())))
  pos = np.arange(len(names))
  for i, (form, e) in enumerate(errs.items()):
    ax.bar(pos + 0.35 * i, [max(e[k], 1e-18) for k in names], 0.35, label=f'{form} backprop')
  ax.bar(len(names) + np.arange(len(gates)) * 0.7, [max(v, 1e-18) for v in gates.values()],
         0.35, color='tab:purple', label='gate VJP vs jax.vjp')
  ax.set_xticks(list(pos + 0.17) + list(len(names) + np.arange(len(gates)) * 0.7))
  ax.set_xticklabels(names + [k.replace('SoftmaxCrossEntropy', 'softmax\nxent') for k in gates],
                     fontsize=7)
  ax.set_yscale('log')
  ax.axhline(1e-12, color='k', ls='--', lw=0.8, label='claim bound 1e-12')
  ax.set_xlabel('parameter gradient (bars: flat, modular) or gate')
  ax.set_ylabel('max relative error vs jax (float64)')
  ax.set_title('2-layer net: hand-written gradients vs jax.grad', fontsize=9)
  ax.legend(fontsize=7)
  figure.save(fig, path)
