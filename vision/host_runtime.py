"""Keep XLA:CPU's per-step buffers in the malloc heap: applied when `vision` is imported.

XLA's CPU runtime allocates each execution's buffers (everything a train
step keeps for its backward pass: about 1 GB for ViT-S/16 at batch 8) with
`malloc` and frees them when the execution ends. glibc serves a request
above its mmap threshold (at most 32 MiB) with a fresh anonymous `mmap`,
and a thread arena's heap holds at most 64 MiB, so with JAX's default
asynchronous CPU dispatch — executions run on a worker thread — every step
maps, page-faults in 4 KiB at a time (the kernel zeroing each page) and
unmaps the whole buffer again: ≈260k minor faults and 0.6–0.8 s of system
time per ViT-S train step of ≈1.6 s on a 2-core host.

Two process settings remove that cost without touching the arithmetic:

1. `jax_cpu_enable_async_dispatch=False`: a computation runs inline on the
   thread that calls it (the Python thread, whose allocations come from
   glibc's main arena, which can grow without bound by `brk`). This only
   takes effect if set before JAX creates its CPU client, hence at import.
2. `mallopt(M_MMAP_MAX, 0)` and `mallopt(M_TRIM_THRESHOLD, -1)`: the main
   arena serves large requests from its heap instead of `mmap`, and never
   gives freed memory back to the kernel, so the next step's buffers reuse
   the pages the previous step touched: ≈0 faults per step.

The cost is that the process keeps its peak heap until it exits (as
tcmalloc or jemalloc would), and Python no longer runs ahead of a CPU
computation it has dispatched (on a CPU host the computation uses every
core anyway).

Nothing is done, and `configure` says why, when `VISOPT_MALLOC_TUNING=0`;
when the platform is not Linux with glibc; when JAX will not run on the CPU
(`JAX_PLATFORMS` names another platform first, or, unset, a GPU/TPU plugin
is installed). A `JAX_CPU_ENABLE_ASYNC_DISPATCH` of the user's own is kept.
If JAX's backends were already initialised when `vision` was first
imported, the dispatch setting cannot apply any more and is reported as such.
"""
from __future__ import annotations

import ctypes
import dataclasses
import importlib.util
import os
import platform
from typing import Mapping, Optional

OPT_OUT = 'VISOPT_MALLOC_TUNING'
DISPATCH_ENV = 'JAX_CPU_ENABLE_ASYNC_DISPATCH'
# Packages whose presence means JAX picks an accelerator when JAX_PLATFORMS is unset.
ACCELERATOR_PLUGINS = ('jax_plugins', 'libtpu')
# glibc <malloc.h> parameter numbers.
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4


@dataclasses.dataclass(frozen=True)
class HostRuntime:
  """What `configure` did: each field True when that setting is in force."""
  heap_kept: bool
  inline_dispatch: bool
  reason: str


def runs_on_cpu(environ: Mapping[str, str]) -> bool:
  """Whether JAX's default backend will be the CPU, decided without initialising JAX."""
  platforms = environ.get('JAX_PLATFORMS', '').strip().lower()
  if platforms:
    return platforms.split(',')[0].strip() == 'cpu'
  return not any(importlib.util.find_spec(p) for p in ACCELERATOR_PLUGINS)


def applicable(environ: Mapping[str, str], system: Optional[str] = None,
               libc: Optional[tuple[str, str]] = None) -> tuple[bool, str]:
  """(whether to tune, the reason); `system` and `libc` default to this host's."""
  system = platform.system() if system is None else system
  name, _ = platform.libc_ver() if libc is None else libc
  if environ.get(OPT_OUT, '1') == '0':
    return False, f'{OPT_OUT}=0'
  if system != 'Linux' or name != 'glibc':
    return False, f'not Linux with glibc ({system}, {name or "unknown libc"})'
  if not runs_on_cpu(environ):
    return False, 'JAX will not run on the CPU'
  return True, 'CPU host with glibc'


def _backends_initialised() -> bool:
  from jax._src import xla_bridge  # pylint: disable=g-import-not-at-top
  return bool(getattr(xla_bridge, '_backends', None))


def configure(environ: Mapping[str, str] = os.environ) -> HostRuntime:
  """Applies the two settings of the module docstring where they apply; idempotent."""
  ok, reason = applicable(environ)
  if not ok:
    return HostRuntime(False, False, reason)
  libc = ctypes.CDLL(None)
  heap_kept = bool(libc.mallopt(M_MMAP_MAX, 0)) and bool(libc.mallopt(M_TRIM_THRESHOLD, -1))
  import jax  # pylint: disable=g-import-not-at-top
  asynchronous = bool(jax.config.values.get('jax_cpu_enable_async_dispatch', True))
  if DISPATCH_ENV in environ:
    inline = not asynchronous
    reason = f'{DISPATCH_ENV} set by the user'
  elif _backends_initialised():
    inline = not asynchronous
    reason = 'JAX backends were initialised before vision was imported'
  else:
    jax.config.update('jax_cpu_enable_async_dispatch', False)
    inline = True
  return HostRuntime(heap_kept, inline, reason)
