"""Benchmark section `models`: forward and train-step throughput against HuggingFace PyTorch.

    python -m experiments.benchmark --only models [--quick]

For `vit_small_patch16_224` (and `swin_tiny_patch4_window7_224` when it is
registered) at batch 8 and 224×224 on CPU:

* forward images/s: our jitted `module.apply(train=False)` against the HF
  model of the same configuration in eval mode under `torch.no_grad()`;
* train-step images/s: one full step — forward, softmax cross-entropy,
  backward, AdamW update (optax inside the same jit, parameters and optimizer
  state donated) — against HF in train mode with `torch.optim.AdamW`;
* compile seconds of both jitted functions (in `extra`; PyTorch eager has none);
* utilisation: achieved FLOP/s (XLA's cost analysis of our step, applied to
  both sides since the models are the same) as a fraction of the machine's
  float32 matmul peak (a large jitted `jnp.dot`, experiments/benchmarks/machine.py).

Both sides run in the same process, interleaved call by call (A, B, A, B…)
so background load hits both alike; PyTorch uses as many intra-op threads as
the machine has cores, as XLA's CPU backend does. Ratio > 1: ours is faster.
"""
from __future__ import annotations

import os
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

import vision
from experiments.benchmarks import machine
from experiments.benchmarks.common import Measurement
from experiments.benchmarks.common import interleaved_times

SECTION = 'models'
BATCH = 8
IMG = 224


def _sync(x: Any) -> Any:
  """Waits for jax arrays; torch on CPU has already finished when it returns."""
  return jax.block_until_ready(x)


def _hf_model(name: str):
  """The HuggingFace PyTorch classifier with the configuration of our `name`."""
  import transformers  # pylint: disable=g-import-not-at-top
  if name.startswith('vit_'):
    m = vision.create_model(name)
    cfg = transformers.ViTConfig(
        hidden_size=m.embed_dim, num_hidden_layers=m.depth, num_attention_heads=m.num_heads,
        intermediate_size=int(m.embed_dim * m.mlp_ratio), layer_norm_eps=1e-6,
        image_size=IMG, patch_size=m.patch_size, num_labels=1000, hidden_act='gelu')
    return transformers.ViTForImageClassification(cfg)
  if name.startswith('swin_'):
    m = vision.create_model(name)
    fields = {f: getattr(m, f) for f in ('embed_dim', 'depths', 'num_heads', 'window_size',
                                          'patch_size') if hasattr(m, f)}
    cfg = transformers.SwinConfig(image_size=IMG, num_labels=1000, hidden_act='gelu',
                                  drop_path_rate=0.0,
                                  **{k: list(v) if isinstance(v, tuple) else v
                                     for k, v in fields.items()})
    return transformers.SwinForImageClassification(cfg)
  raise ValueError(f'No HuggingFace peer for {name!r}.')


def _ours(name: str, x: jax.Array, y: jax.Array) -> dict[str, Any]:
  """Compiled forward and train step of our model, with compile times and FLOPs."""
  module = vision.create_model(name, drop_path_rate=0.0)  # the HF peer runs without it too
  params = jax.jit(module.init)(jax.random.PRNGKey(0), x[:1])['params']
  opt = optax.adamw(1e-4)

  def loss_fn(p, x, y):
    logits = module.apply({'params': p}, x, train=True, rngs={'dropout': jax.random.PRNGKey(0)})
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

  def step(p, s, x, y):
    loss, grads = jax.value_and_grad(loss_fn)(p, x, y)
    updates, s = opt.update(grads, s, p)
    return optax.apply_updates(p, updates), s, loss

  opt_state = opt.init(params)
  t0 = time.perf_counter()
  train = jax.jit(step, donate_argnums=(0, 1)).lower(params, opt_state, x, y).compile()
  train_compile = time.perf_counter() - t0
  t0 = time.perf_counter()
  forward = jax.jit(lambda p, x: module.apply({'params': p}, x)).lower(params, x).compile()
  forward_compile = time.perf_counter() - t0

  def flops(compiled) -> float:
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    return float(cost['flops'])

  state = {'params': params, 'opt': opt_state}

  def train_call():
    state['params'], state['opt'], loss = train(state['params'], state['opt'], x, y)
    return loss

  return dict(forward=lambda: forward(state['params'], x), train=train_call,
              forward_compile=forward_compile, train_compile=train_compile,
              forward_flops=flops(forward), train_flops=flops(train))


def _peer(name: str, x: np.ndarray, y: np.ndarray) -> dict[str, Callable[[], Any]]:
  import torch  # pylint: disable=g-import-not-at-top
  model = _hf_model(name)
  opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
  tx = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
  ty = torch.from_numpy(y.astype(np.int64))

  def forward():
    model.eval()
    with torch.no_grad():
      return model(tx).logits

  def train():
    model.train()
    opt.zero_grad(set_to_none=True)
    loss = torch.nn.functional.cross_entropy(model(tx).logits, ty)
    loss.backward()
    opt.step()
    return loss

  return dict(forward=forward, train=train)


def run(quick: bool) -> list[Measurement]:
  """Forward/train images/s, ours vs HF PyTorch, plus compile time and utilisation."""
  import torch  # pylint: disable=g-import-not-at-top
  cores = os.cpu_count() or 1
  torch.set_num_threads(cores)
  repeats, warmup = (3, 1) if quick else (10, 2)
  peak = machine.jax_matmul_peak(1024 if quick else 2048, repeats=3 if quick else 10)
  names = ['vit_small_patch16_224']
  if 'swin_tiny_patch4_window7_224' in vision.list_models():
    names.append('swin_tiny_patch4_window7_224')
  rng = np.random.default_rng(0)
  x_np = rng.standard_normal((BATCH, IMG, IMG, 3), dtype=np.float32)
  y_np = (np.arange(BATCH) * 37 % 1000).astype(np.int32)
  x, y = jnp.asarray(x_np), jnp.asarray(y_np)
  rows = []
  for name in names:
    ours, peer = _ours(name, x, y), _peer(name, x_np, y_np)
    common = dict(batch=BATCH, img_size=IMG, cores=cores, torch_threads=torch.get_num_threads(),
                  matmul_peak_gflops=peak / 1e9)
    for kind in ('forward', 'train'):
      times = interleaved_times({'ours': ours[kind], 'peer': peer[kind]}, repeats=repeats,
                                warmup=warmup, sync=_sync)
      flops = ours[f'{kind}_flops']
      extra = dict(common, compile_s=ours[f'{kind}_compile'], gflop_per_call=flops / 1e9,
                   ours_s=times['ours'], peer_s=times['peer'],
                   ours_utilisation=flops / times['ours'] / peak,
                   peer_utilisation=flops / times['peer'] / peak)
      rows.append(Measurement(SECTION, f'{name} {kind} b{BATCH}', BATCH / times['ours'],
                              BATCH / times['peer'], 'img/s', 'HF transformers (PyTorch)',
                              higher_is_better=True, extra=extra))
      rows.append(Measurement(SECTION, f'{name} {kind} utilisation', extra['ours_utilisation'],
                              extra['peer_utilisation'], 'frac peak',
                              'HF transformers (PyTorch)', higher_is_better=True,
                              extra=dict(matmul_peak_gflops=peak / 1e9)))
  return rows
