"""Layers shared by the transformer families (ViT, Swin, PVT, MiT).

Conventions: NHWC / [B, tokens, C] inputs; parameters are float32
(`param_dtype`), computation runs in `dtype`; randomness (dropout, drop path)
comes from the 'dropout' rng stream and only when `deterministic=False`.
"""
from __future__ import annotations

from typing import Any, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

Dtype = Any

# torch.nn.Linear / Conv2d initialise with trunc_normal(0.02) in the reference
# ViT/Swin/PVT/SegFormer code; biases start at zero, LayerNorm at (1, 0).
dense_init = nn.initializers.truncated_normal(stddev=0.02)


def gelu(x: jax.Array) -> jax.Array:
  """Exact GELU, x·Φ(x) with the erf CDF (timm/HF default; flax's is tanh)."""
  return nn.gelu(x, approximate=False)


class DropPath(nn.Module):
  """Stochastic depth (Huang et al. 2016): per-sample residual-branch dropout.

  y = x · b / (1 − r) with one Bernoulli(1 − r) draw b per example, so the
  expected output equals x.
  """
  rate: float = 0.0

  @nn.compact
  def __call__(self, x: jax.Array, deterministic: bool = True) -> jax.Array:
    if deterministic or self.rate == 0.0:
      return x
    keep = 1.0 - self.rate
    shape = (x.shape[0],) + (1,) * (x.ndim - 1)
    mask = jax.random.bernoulli(self.make_rng('dropout'), keep, shape)
    return jnp.where(mask, x / keep, jnp.zeros_like(x))


class Mlp(nn.Module):
  """Transformer MLP: fc1 → exact GELU → dropout → fc2 → dropout."""
  hidden_dim: int
  out_dim: Optional[int] = None
  drop_rate: float = 0.0
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, deterministic: bool = True) -> jax.Array:
    out_dim = self.out_dim or x.shape[-1]
    x = nn.Dense(self.hidden_dim, dtype=self.dtype, kernel_init=dense_init, name='fc1')(x)
    x = gelu(x)
    x = nn.Dropout(self.drop_rate)(x, deterministic=deterministic)
    x = nn.Dense(out_dim, dtype=self.dtype, kernel_init=dense_init, name='fc2')(x)
    return nn.Dropout(self.drop_rate)(x, deterministic=deterministic)


def dot_product_attention(q: jax.Array, k: jax.Array, v: jax.Array,
                          bias: Optional[jax.Array] = None) -> jax.Array:
  """softmax(QKᵀ/√d + B)·V over [B, T, heads, head_dim] tensors.

  Goes through `jax.nn.dot_product_attention` so XLA (or cuDNN's fused kernel
  on GPU) picks the implementation; the softmax runs in float32 whatever the
  compute dtype. `bias` broadcasts to [B, heads, T, S]. Float64 inputs (the
  gradient checks) take the same math spelled out, since the fused op
  computes in float32 whatever its inputs.
  """
  if bias is not None:
    bias = bias.astype(q.dtype)
  if q.dtype == jnp.float64:
    scores = jnp.einsum('bqhd,bkhd->bhqk', q, k) / jnp.sqrt(jnp.float64(q.shape[-1]))
    if bias is not None:
      scores = scores + bias
    return jnp.einsum('bhqk,bkhd->bqhd', jax.nn.softmax(scores, axis=-1), v)
  return jax.nn.dot_product_attention(q, k, v, bias=bias)


def to_2tuple(size: Any, name: str = 'img_size') -> tuple[int, int]:
  """`size` as (height, width); an int means a square. ValueError if not positive."""
  pair = (size, size) if isinstance(size, int) else tuple(size)
  if len(pair) != 2 or not all(isinstance(s, int) and s > 0 for s in pair):
    raise ValueError(f'{name} must be a positive int or (height, width) pair, got {size!r}.')
  return pair


def check_image_shape(x: Any, img_size: Any, in_chans: int, model: str) -> None:
  """Raises a ValueError unless `x` is a [B, H, W, in_chans] batch at img_size.

  Runs on static shapes, so a misfit fails at trace time, before compilation.
  """
  size = to_2tuple(img_size)
  if x.ndim != 4 or tuple(x.shape[1:]) != (*size, in_chans):
    raise ValueError(
        f'{model} expects images of shape [batch, {size[0]}, {size[1]}, {in_chans}] '
        f'(NHWC, img_size={img_size!r}, in_chans={in_chans}), got {tuple(x.shape)}. '
        f'Create the model with img_size={tuple(x.shape[1:3]) if x.ndim == 4 else "..."}'
        f'{f", in_chans={x.shape[-1]}" if x.ndim == 4 else ""} to fit these images.')
