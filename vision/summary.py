"""`summary`: parameter count and forward GMACs of a registered model."""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from vision import registry


def param_count(variables_or_shapes: Any) -> int:
  """Number of scalars under 'params' (BatchNorm statistics are not parameters)."""
  params = variables_or_shapes.get('params', variables_or_shapes)
  return int(sum(x.size for x in jax.tree.leaves(params)))


def summary(name: str, batch_size: int = 1, **overrides: Any) -> dict[str, Any]:
  """Parameter count and forward multiply-accumulates of model `name`.

  GMACs come from XLA's cost analysis of the jitted forward pass at the
  model's `img_size` (flops / 2, the vision papers' "FLOPs" convention), of
  the computation the papers count: a ViT's last block computes every
  token's row (`full_last_block=True`) though the class-token head reads one.

  Returns:
    {'name', 'params', 'gmacs', 'img_size', 'batch_size'}.
  """
  module = registry.create_model(name, **overrides)
  if hasattr(module, 'full_last_block') and 'full_last_block' not in overrides:
    module = module.clone(full_last_block=True)
  size = getattr(module, 'img_size', 224)
  size = (size, size) if isinstance(size, int) else tuple(size)
  x = jax.ShapeDtypeStruct((batch_size, *size, getattr(module, 'in_chans', 3)), jnp.float32)
  shapes = jax.eval_shape(lambda x: module.init(jax.random.PRNGKey(0), x, train=False), x)
  forward = jax.jit(lambda v, x: module.apply(v, x, train=False))
  cost = forward.lower(shapes, x).compile().cost_analysis()
  if isinstance(cost, (list, tuple)):
    cost = cost[0]
  flops = float(cost.get('flops', 0.0)) if cost else 0.0
  return {'name': name, 'params': param_count(shapes), 'gmacs': flops / 2 / 1e9 / batch_size,
          'img_size': size, 'batch_size': batch_size}
