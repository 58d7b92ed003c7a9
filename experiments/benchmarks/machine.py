"""The benchmark header: which machine the figures come from, and what its matmuls can do.

Ratios against a peer are comparable across machines only up to how the two
libraries' kernels fare on each CPU, so the header records the CPU model,
core count, library versions, the host settings `vision` applied
(vision/host_runtime.py) and the float32 matmul peak of both libraries:
the best of `repeats` n×n×n products, 2n³ flops each, a jitted `jnp.dot`
against `torch.mm` with as many intra-op threads as cores.
"""
from __future__ import annotations

import dataclasses
import os
import platform
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import vision


def cpu_model() -> str:
  """The CPU's marketing name from /proc/cpuinfo (Linux), else `platform.processor()`."""
  try:
    with open('/proc/cpuinfo') as f:
      for line in f:
        if line.startswith('model name'):
          return line.split(':', 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or platform.machine()


def _best_seconds(fn, repeats: int) -> float:
  fn()
  best = float('inf')
  for _ in range(repeats):
    t0 = time.perf_counter()
    fn()
    best = min(best, time.perf_counter() - t0)
  return best


def jax_matmul_peak(n: int, repeats: int) -> float:
  """float32 FLOP/s of a jitted n×n×n `jnp.dot`, the best of `repeats`."""
  a = jnp.asarray(np.random.default_rng(0).standard_normal((n, n), dtype=np.float32))
  mm = jax.jit(jnp.dot)
  return 2 * n ** 3 / _best_seconds(lambda: jax.block_until_ready(mm(a, a)), repeats)


def torch_matmul_peak(n: int, repeats: int) -> float:
  """float32 FLOP/s of `torch.mm` on n×n matrices, the best of `repeats`."""
  import torch  # pylint: disable=g-import-not-at-top
  a = torch.from_numpy(np.random.default_rng(0).standard_normal((n, n), dtype=np.float32))
  return 2 * n ** 3 / _best_seconds(lambda: torch.mm(a, a), repeats)


def describe(quick: bool) -> dict[str, Any]:
  """The header's facts; matmul peaks at n = 2048 (1024 with `quick`)."""
  import torch  # pylint: disable=g-import-not-at-top
  cores = os.cpu_count() or 1
  torch.set_num_threads(cores)
  n, repeats = (1024, 3) if quick else (2048, 10)
  return {
      'cpu_model': cpu_model(),
      'cores': cores,
      'python': platform.python_version(),
      'jax': jax.__version__,
      'jaxlib_backend': jax.default_backend(),
      'torch': torch.__version__,
      'torch_threads': torch.get_num_threads(),
      'host_runtime': dataclasses.asdict(vision.HOST_RUNTIME),
      'matmul_n': n,
      'jax_matmul_peak_gflops': jax_matmul_peak(n, repeats) / 1e9,
      'torch_matmul_peak_gflops': torch_matmul_peak(n, repeats) / 1e9,
  }


def format_header(facts: dict[str, Any]) -> str:
  rt = facts['host_runtime']
  return '\n'.join([
      f'CPU: {facts["cpu_model"]}, {facts["cores"]} cores '
      f'(torch {facts["torch_threads"]} threads)',
      f'versions: python {facts["python"]}, jax {facts["jax"]} '
      f'({facts["jaxlib_backend"]}), torch {facts["torch"]}',
      f'float32 matmul peak at n={facts["matmul_n"]}: jax {facts["jax_matmul_peak_gflops"]:.1f} '
      f'GFLOP/s, torch {facts["torch_matmul_peak_gflops"]:.1f} GFLOP/s',
      f'host runtime (vision/host_runtime.py): heap kept {rt["heap_kept"]}, '
      f'inline dispatch {rt["inline_dispatch"]} ({rt["reason"]})',
  ])
