"""PVT's spatial-reduction attention: keys/values from an R×R-reduced map cut the
attention's cost by R² (Wang et al. 2021, Eq. 4: O(N²) → O(N²/R²)), counted
in the jaxpr: the FLOPs of the batched matmuls QKᵀ and AV and the size of the
score matrix."""
import jax
import jax.numpy as jnp
from jax.extend import core as jax_core
import numpy as np
import pytest

from vision import pvt


def attention_cost(r: int, hw=(16, 16), dim=32, heads=2) -> tuple[int, int]:
  """(FLOPs of the batched dot_generals, elements of the score tensor QKᵀ)."""
  attn = pvt.SpatialReductionAttention(heads, sr_ratio=r, dtype=jnp.float64)
  x = jnp.zeros((1, hw[0] * hw[1], dim), jnp.float64)
  params = jax.eval_shape(lambda k, v: attn.init(k, v, hw), jax.random.PRNGKey(0), x)
  flops, scores = 0, 0

  def walk(jaxpr):
    nonlocal flops, scores
    for eqn in jaxpr.eqns:
      if eqn.primitive.name == 'dot_general':
        (contract, _), (batch, _) = eqn.params['dimension_numbers']
        if batch:  # the attention matmuls; the projections have no batch axes
          lhs = eqn.invars[0].aval.shape
          out = eqn.outvars[0].aval.shape
          flops += 2 * int(np.prod(out)) * int(np.prod([lhs[d] for d in contract]))
          scores = scores or int(np.prod(out))  # the first, QKᵀ, gives the scores
      for sub in jax_core.jaxprs_in_params(eqn.params):
        walk(sub)

  walk(jax.make_jaxpr(lambda p, x: attn.apply(p, x, hw))(params, x).jaxpr)
  return flops, scores


@pytest.mark.parametrize('r', [2, 4, 8])
def test_spatial_reduction_divides_attention_cost_by_r_squared(x64, r):
  full_flops, full_scores = attention_cost(1)
  n = 16 * 16
  assert full_scores == 2 * n * n  # heads × N × N
  assert full_flops == 2 * (2 * 2 * n * n * 16)  # QKᵀ and AV, d = 16 per head
  flops, scores = attention_cost(r)
  assert scores * r * r == full_scores
  assert flops * r * r == full_flops
