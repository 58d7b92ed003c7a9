"""Back XLA:CPU's per-step buffers with huge pages: a glibc malloc tunable for the entry points.

XLA's CPU runtime allocates each execution's buffers (everything a train
step keeps for its backward pass: about 1 GB for ViT-S/16 at batch 8) with
malloc from a worker thread, and frees them when the step ends. glibc
serves a request above its mmap threshold (at most 32 MiB; a thread arena's
heap holds 64 MiB) with a fresh anonymous mmap, so every step maps,
page-faults in 4 KiB at a time (the kernel zeroing each page) and unmaps
the whole buffer again. Measured on a 2-core host: 258k minor faults and
0.4–3.6 s of system time per ViT-S train step of ≈1 s of compute.

The tunable `glibc.malloc.hugetlb=1` (glibc ≥ 2.35) makes malloc ask for
transparent huge pages (madvise) on such mappings: one fault per 2 MiB,
≈900 per ViT-S step, 0.06–0.1 s of system time. The step's own arithmetic
is unchanged. (Keeping the memory mapped instead, with `mmap_max=0` and
`arena_max=1`, also removes the faults but forces every thread through
one arena, which made the small-model trainer 1.5–2× slower.)

Tunables are read once, when the process starts, so an entry point calls
`reexec_with_malloc_tunables()` before its imports: it replaces the process
by the same command line with `GLIBC_TUNABLES` set. It does nothing where
the setting would not apply or was chosen already: not Linux with glibc ≥
2.35; transparent huge pages disabled; `GLIBC_TUNABLES` already in the
environment (the user's own choice, or the re-executed process itself);
`VISOPT_MALLOC_TUNING=0`; or JAX will not run on the CPU (`JAX_PLATFORMS`
names another platform first, or, unset, a GPU/TPU plugin is installed).
"""
from __future__ import annotations

import importlib.util
import os
import platform
import sys
from typing import Mapping, Optional

TUNABLES = ('glibc.malloc.hugetlb=1',)
MIN_GLIBC = (2, 35)  # the first release with glibc.malloc.hugetlb
THP_SETTING = '/sys/kernel/mm/transparent_hugepage/enabled'
OPT_OUT = 'VISOPT_MALLOC_TUNING'
# Packages whose presence means JAX picks an accelerator when JAX_PLATFORMS is unset.
ACCELERATOR_PLUGINS = ('jax_plugins', 'libtpu')


def _runs_on_cpu(environ: Mapping[str, str]) -> bool:
  platforms = environ.get('JAX_PLATFORMS', '').strip().lower()
  if platforms:
    return platforms.split(',')[0].strip() == 'cpu'
  return not any(importlib.util.find_spec(p) for p in ACCELERATOR_PLUGINS)


def _huge_pages_possible(path: str = THP_SETTING) -> bool:
  """True unless transparent huge pages are off ('[never]') or the kernel has none."""
  try:
    with open(path) as f:
      return '[never]' not in f.read()
  except OSError:
    return False


def _version(text: str) -> tuple[int, ...]:
  try:
    return tuple(int(part) for part in text.split('.')[:2])
  except ValueError:
    return ()


def tuned_environment(environ: Mapping[str, str],
                      system: Optional[str] = None,
                      libc: Optional[tuple[str, str]] = None,
                      huge_pages: Optional[bool] = None) -> Optional[dict[str, str]]:
  """The environment to re-execute with, or None when the process should stay as it is.

  `system`, `libc` ((name, version)) and `huge_pages` default to this host's.
  """
  system = platform.system() if system is None else system
  name, version = platform.libc_ver() if libc is None else libc
  if system != 'Linux' or name != 'glibc' or _version(version) < MIN_GLIBC:
    return None
  if 'GLIBC_TUNABLES' in environ or environ.get(OPT_OUT, '1') == '0':
    return None
  if not _runs_on_cpu(environ):
    return None
  if not (_huge_pages_possible() if huge_pages is None else huge_pages):
    return None
  return dict(environ, GLIBC_TUNABLES=':'.join(TUNABLES))


def reexec_with_malloc_tunables() -> None:
  """Replaces this process by the same command with `TUNABLES` set (see the module doc).

  Returns (doing nothing) when `tuned_environment` says so; otherwise does
  not return. Call it first thing in `if __name__ == '__main__'`, before
  heavy imports, so nothing is done twice.
  """
  env = tuned_environment(os.environ)
  if env is None:
    return
  sys.stdout.flush()
  sys.stderr.flush()
  os.execve(sys.executable, list(sys.orig_argv), env)
