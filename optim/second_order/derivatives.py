"""Derivatives of `value_fn` that stay global under `pmap` (the `axis_name` option).

In a data-parallel step the trainer's objective is J(θ) = pmean_d J_d(θ)
(`lax.pmean` over the device axis), and every device holds its own copy of
θ. The value is the same on every device, but reverse-mode differentiation
through `pmean` hands each device only ∇J_d, its own share, not ∇J: the
transpose of the collective does not sum the other devices' cotangents into
this device's copy of θ. A line search deciding on ∇J_d·d, or a Newton
step from ∇²J_d, would then differ between devices (different loop trip
counts around collectives, replicas drifting apart). With `axis_name` set
to the pmap axis, the gradient, Hessian and Hessian-vector products below
are `pmean`'d over it, which restores ∇J = mean_d ∇J_d (and ∇²J likewise).
Without `axis_name` they are plain `jax` derivatives.
"""
from __future__ import annotations

from typing import Callable, Optional

import jax

Flat = jax.Array


def _mean(tree, axis_name: Optional[str]):
  return tree if axis_name is None else jax.lax.pmean(tree, axis_name)


def value_and_grad(f: Callable[[Flat], Flat], axis_name: Optional[str] = None
                   ) -> Callable[[Flat], tuple[Flat, Flat]]:
  """x ↦ (f(x), ∇f(x)), the gradient averaged over `axis_name` when given."""
  vg = jax.value_and_grad(f)

  def fn(x):
    value, grad = vg(x)
    return value, _mean(grad, axis_name)

  return fn


def grad(f: Callable[[Flat], Flat], axis_name: Optional[str] = None) -> Callable[[Flat], Flat]:
  """x ↦ ∇f(x), averaged over `axis_name` when given."""
  g = jax.grad(f)
  return lambda x: _mean(g(x), axis_name)


def hessian(f: Callable[[Flat], Flat], x: Flat, axis_name: Optional[str] = None) -> Flat:
  """∇²f(x) (forward-over-reverse), averaged over `axis_name` when given."""
  return _mean(jax.hessian(f)(x), axis_name)


def hvp_fn(f: Callable[[Flat], Flat], x: Flat, axis_name: Optional[str] = None
           ) -> Callable[[Flat], Flat]:
  """v ↦ ∇²f(x)v by one `jax.linearize` of ∇f (reused for every v), averaged."""
  _, hvp = jax.linearize(jax.grad(f), x)
  return lambda v: _mean(hvp(v), axis_name)
