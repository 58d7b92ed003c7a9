"""The curvature pair of quasi-Newton updates and its safeguard (BFGS, L-BFGS).

s = x_{k+1} − x_k and y = ∇f(x_{k+1}) − ∇f(x_k). A pair enters the inverse-
Hessian approximation only when yᵀs > ε·yᵀy (so the update keeps H positive
definite, Nocedal & Wright §6.1) and both products are finite and yᵀy > 0;
otherwise it is skipped. ε defaults to the dtype's machine epsilon.
"""
from __future__ import annotations

from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp


class CurvaturePair(NamedTuple):
  s: jax.Array
  y: jax.Array
  sy: jax.Array  # yᵀs
  yy: jax.Array  # yᵀy
  keep: jax.Array  # bool: the pair passes the safeguard


def curvature_pair(x: jax.Array, g: jax.Array, prev_x: jax.Array, prev_g: jax.Array,
                   count: jax.Array, curvature_eps: Optional[float] = None) -> CurvaturePair:
  """(s, y, yᵀs, yᵀy, keep) for flat parameters `x` and gradient `g`; step 0 keeps none."""
  eps = jnp.finfo(x.dtype).eps if curvature_eps is None else curvature_eps
  s = x - prev_x
  y = g - prev_g
  sy = jnp.vdot(s, y)
  yy = jnp.vdot(y, y)
  keep = (count > 0) & (sy > eps * yy) & jnp.isfinite(sy) & (yy > 0)
  return CurvaturePair(s, y, sy, yy, keep)
