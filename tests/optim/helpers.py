"""Shared fixtures for the optim tests: a mixed-shape pytree, a gradient
sequence, and a jitted trajectory runner (one compile per optimizer)."""
from __future__ import annotations

import contextlib
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
import torch

SHAPES = {'dense': {'kernel': (3, 4), 'bias': (4,)},
          'conv': {'kernel': (2, 3, 5)},
          'scale': ()}
# Per-leaf gradient magnitudes spread over four decades.
SCALES = {'dense': {'kernel': 1.0, 'bias': 1e-2}, 'conv': {'kernel': 10.0}, 'scale': 1e-1}


def init_params(dtype=np.float64, seed: int = 0) -> Any:
  rng = np.random.default_rng(seed)
  return jax.tree.map(lambda s: rng.normal(size=s).astype(dtype), SHAPES,
                      is_leaf=lambda x: isinstance(x, tuple))


def grad_sequence(steps: int, dtype=np.float64, seed: int = 1) -> Any:
  """A pytree whose leaves are [steps, *shape] gradients."""
  rng = np.random.default_rng(seed)
  return jax.tree.map(lambda s, c: (c * rng.normal(size=(steps,) + s)).astype(dtype),
                      SHAPES, SCALES, is_leaf=lambda x: isinstance(x, tuple))


def run(opt: optax.GradientTransformation, params: Any, grads: Any) -> Any:
  """Parameters after each step, leaves [steps, *shape], in one compiled scan."""

  @jax.jit
  def trajectory(params, grads):
    def step(carry, g):
      p, s = carry
      u, s = opt.update(g, s, p)
      p = optax.apply_updates(p, u)
      return (p, s), p
    _, ps = jax.lax.scan(step, (params, opt.init(params)), grads)
    return ps

  return jax.tree.map(np.asarray, trajectory(
      jax.tree.map(jnp.asarray, params), jax.tree.map(jnp.asarray, grads)))


def run_updates(opt: optax.GradientTransformation, params: Any, grads: Any) -> Any:
  """The updates of each step, leaves [steps, *shape] (params move as well)."""

  @jax.jit
  def trajectory(params, grads):
    def step(carry, g):
      p, s = carry
      u, s = opt.update(g, s, p)
      return (optax.apply_updates(p, u), s), u
    _, us = jax.lax.scan(step, (params, opt.init(params)), grads)
    return us

  return jax.tree.map(np.asarray, trajectory(
      jax.tree.map(jnp.asarray, params), jax.tree.map(jnp.asarray, grads)))


def run_many(opts: dict[str, optax.GradientTransformation], params: Any, grads: Any
             ) -> dict[str, Any]:
  """`run` for several optimizers at once: one compile for all of them.

  XLA's fixed cost per compile dominates these tiny problems, so the suites
  trace every optimizer into one jitted function.
  """

  @jax.jit
  def trajectories(params, grads):
    out = {}
    for key, opt in opts.items():
      def step(carry, g, opt=opt):
        p, s = carry
        u, s = opt.update(g, s, p)
        p = optax.apply_updates(p, u)
        return (p, s), p
      out[key] = jax.lax.scan(step, (params, opt.init(params)), grads)[1]
    return out

  return jax.tree.map(np.asarray, trajectories(
      jax.tree.map(jnp.asarray, params), jax.tree.map(jnp.asarray, grads)))


@contextlib.contextmanager
def x64(enabled: bool = True):
  """float64 on/off for a block (module-scoped fixtures cannot use `x64`)."""
  previous = jax.config.jax_enable_x64
  jax.config.update('jax_enable_x64', enabled)
  try:
    yield
  finally:
    jax.config.update('jax_enable_x64', previous)


@contextlib.contextmanager
def torch_dtype(dtype):
  previous = torch.get_default_dtype()
  torch.set_default_dtype(dtype)
  try:
    yield
  finally:
    torch.set_default_dtype(previous)


def run_torch(make: Callable[[list], Any], params: Any, grads: Any,
              dtype=torch.float64, schedule: Callable[[int], float] | None = None) -> Any:
  """torch.optim on the same leaves (jax.tree order); same output layout as `run`."""
  leaves, treedef = jax.tree.flatten(params)
  g_leaves = jax.tree.leaves(grads)
  steps = g_leaves[0].shape[0]
  with torch_dtype(dtype):
    ps = [torch.tensor(np.asarray(x), dtype=dtype, requires_grad=True) for x in leaves]
    opt = make(ps)
    sched = (torch.optim.lr_scheduler.LambdaLR(opt, schedule) if schedule else None)
    out = [np.zeros((steps,) + x.shape, x.dtype) for x in leaves]
    for t in range(steps):
      for p, g in zip(ps, g_leaves):
        p.grad = torch.tensor(np.asarray(g[t]), dtype=dtype)
      opt.step()
      if sched is not None:
        sched.step()
      for o, p in zip(out, ps):
        o[t] = p.detach().numpy()
  return jax.tree.unflatten(treedef, out)


def max_rel_error(ours: Any, ref: Any) -> float:
  """max over leaves of max_t ‖ours_t − ref_t‖∞ / max_t ‖ref_t‖∞.

  Normalising by the leaf's largest magnitude over the trajectory (not step by
  step) keeps a scalar leaf that passes through zero from dividing by ~0.
  """
  errs = []
  for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(ref)):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert a.shape == b.shape, (a.shape, b.shape)
    errs.append(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))
  return float(max(errs))
