"""Benchmark: our first-order updates against optax's on a ViT-sized pytree.

For adam, sgd+momentum and rmsprop, times one jitted `update + apply_updates`
step (parameters and optimizer state donated, as a trainer would) of ours and
of optax on the same ~100M-parameter pytree (ViT-B-like leaves; `quick`: ~5M),
interleaved in one run. Also compares the optimizer-state bytes, which must
be equal (no extra copies). Goal: time ratio optax/ours ≥ 0.95.

    python -m experiments.benchmark --only optim [--quick]
"""
from __future__ import annotations

import statistics
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax

import optim
from experiments.benchmarks.common import Measurement
from experiments.benchmarks.common import block

SECTION = 'optim'


def _shapes(width: int, depth: int) -> dict[str, Any]:
  """Leaf shapes of a ViT-like model: 12·width² weights per block."""
  d = width
  block = {'qkv': {'kernel': (d, 3 * d), 'bias': (3 * d,)},
           'proj': {'kernel': (d, d), 'bias': (d,)},
           'fc1': {'kernel': (d, 4 * d), 'bias': (4 * d,)},
           'fc2': {'kernel': (4 * d, d), 'bias': (d,)},
           'ln1': {'scale': (d,), 'bias': (d,)}, 'ln2': {'scale': (d,), 'bias': (d,)}}
  tree = {f'block{i:02d}': block for i in range(depth)}
  tree['embed'] = {'kernel': (16 * 16 * 3, d), 'pos': (197, d)}
  tree['head'] = {'kernel': (d, 1000), 'bias': (1000,)}
  return tree


def _random_tree(shapes: Any, seed: int) -> Any:
  leaves, treedef = jax.tree.flatten(shapes, is_leaf=lambda x: isinstance(x, tuple))
  keys = jax.random.split(jax.random.PRNGKey(seed), len(leaves))
  make = jax.jit(lambda k, shape: jax.random.normal(k, shape, jnp.float32) * 0.02,
                 static_argnums=1)
  return jax.tree.unflatten(treedef, [make(k, s) for k, s in zip(keys, leaves)])


def _interleaved(fns: dict[str, Callable[[], Any]], repeats: int, warmup: int = 2
                 ) -> tuple[dict[str, float], dict[str, float]]:
  """Median wall and process-CPU seconds per call, calls alternating A, B, A, B.

  Like `common.interleaved_times`, plus CPU time (all threads of this
  process), which a shared, oversubscribed machine inflates far less than
  wall time.
  """
  for _ in range(warmup):
    for fn in fns.values():
      block(fn())
  wall = {k: [] for k in fns}
  cpu = {k: [] for k in fns}
  for _ in range(repeats):
    for k, fn in fns.items():
      w0, c0 = time.perf_counter(), time.process_time()
      block(fn())
      wall[k].append(time.perf_counter() - w0)
      cpu[k].append(time.process_time() - c0)
  med = lambda d: {k: statistics.median(v) for k, v in d.items()}  # noqa: E731
  return med(wall), med(cpu)


def _nbytes(tree: Any) -> int:
  return sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(tree))


def _stepper(opt: optax.GradientTransformation) -> Callable[..., Any]:
  def step(params, state, grads):
    updates, state = opt.update(grads, state, params)
    return optax.apply_updates(params, updates), state
  return jax.jit(step, donate_argnums=(0, 1))


PAIRS = {
    'adam': (lambda: optim.adam(1e-3), lambda: optax.adam(1e-3), 'optax.adam'),
    'sgd+momentum': (lambda: optim.sgd(1e-2, momentum=0.9),
                     lambda: optax.sgd(1e-2, momentum=0.9), 'optax.sgd(momentum=0.9)'),
    # Same formula on both sides: decay 0.99, eps outside the square root.
    'rmsprop': (lambda: optim.rmsprop(1e-3),
                lambda: optax.rmsprop(1e-3, decay=0.99, eps_in_sqrt=False),
                'optax.rmsprop(eps_in_sqrt=False)'),
}


def run(quick: bool) -> list[Measurement]:
  width, depth = (192, 12) if quick else (768, 14)
  repeats = 5 if quick else 15
  shapes = _shapes(width, depth)
  grads = _random_tree(shapes, 1)
  n_params = sum(x.size for x in jax.tree.leaves(grads))
  label = f'{n_params / 1e6:.0f}M' if n_params >= 1e6 else str(n_params)
  out = []
  for name, (ours_fn, peer_fn, peer_name) in PAIRS.items():
    sides = {'ours': ours_fn(), 'peer': peer_fn()}
    carry, steps = {}, {}
    for side, opt in sides.items():
      params = _random_tree(shapes, 0)
      carry[side] = (params, opt.init(params))
      steps[side] = _stepper(opt)
    state_bytes = {side: _nbytes(carry[side][1]) for side in sides}

    def make_call(side):
      def call():
        carry[side] = steps[side](*carry[side], grads)
        return carry[side]
      return call

    times, cpu = _interleaved({s: make_call(s) for s in sides}, repeats=repeats)
    out.append(Measurement(
        section=SECTION, name=f'{name} update, {label} params', ours=times['ours'],
        peer=times['peer'], unit='s', peer_name=peer_name,
        extra={'params': n_params, 'state_bytes_ours': state_bytes['ours'],
               'state_bytes_peer': state_bytes['peer'],
               'state_bytes_equal': state_bytes['ours'] == state_bytes['peer'],
               'cpu_s_ours': cpu['ours'], 'cpu_s_peer': cpu['peer'],
               'cpu_ratio': cpu['peer'] / cpu['ours'] if cpu['ours'] else float('inf'),
               'device': jax.devices()[0].device_kind}))
    del carry, steps
  return out
