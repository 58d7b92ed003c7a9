"""The entry points' glibc malloc tunables (experiments/malloc_tuning.py).

The claim: with the tunable, a jitted call whose buffers exceed glibc's
mmap threshold page-faults them in 2 MiB at a time instead of 4 KiB. Checked in child
processes (tunables are read at process start), with and without them.
"""
import ast
import json
import os
import subprocess
import sys

import pytest

from experiments import malloc_tuning
from experiments.sweeps import launcher

ROOT = launcher.PROJECT_ROOT
ENTRY_POINTS = ('main', 'sweep', 'compare', 'benchmark')

# Re-executes itself with the tunables (unless opted out), then counts the
# minor page faults of jitted calls that allocate a 256 MB output each time.
_CHILD = r'''
import json, os, resource, sys
from experiments import malloc_tuning
malloc_tuning.reexec_with_malloc_tunables()
import jax, jax.numpy as jnp
f = jax.jit(lambda x: x + 1.0)
x = jnp.zeros((64 * 2 ** 20,), jnp.float32)
for _ in range(8):  # past compilation and the first calls' one-time mappings
  jax.block_until_ready(f(x))
faults = []
for _ in range(3):
  r0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
  y = jax.block_until_ready(f(x))
  del y
  faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - r0)
print(json.dumps({'tunables': os.environ.get('GLIBC_TUNABLES'), 'faults': faults,
                  'argv': sys.argv[1:]}))
'''


def _child(env_update: dict[str, str]) -> dict:
  env = {k: v for k, v in os.environ.items() if k != 'GLIBC_TUNABLES'}
  env.update(JAX_PLATFORMS='cpu', PYTHONPATH=ROOT, **env_update)
  out = subprocess.run([sys.executable, '-c', _CHILD, 'an-arg'], env=env, cwd=ROOT,
                       capture_output=True, text=True, timeout=300, check=True)
  return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(malloc_tuning.tuned_environment({'JAX_PLATFORMS': 'cpu'}) is None,
                    reason='needs Linux, glibc >= 2.35 and transparent huge pages')
def test_reexec_keeps_large_buffers_mapped_across_calls():
  tuned = _child({})
  assert tuned['tunables'] == ':'.join(malloc_tuning.TUNABLES)
  assert tuned['argv'] == ['an-arg']  # same command line after the re-exec
  # 256 MB = 65536 pages of 4 KiB, or 128 huge pages (measured: 640 faults a call).
  assert max(tuned['faults']) < 2000, tuned
  plain = _child({malloc_tuning.OPT_OUT: '0'})
  assert plain['tunables'] is None
  assert min(plain['faults']) > 30000, plain  # the case the tunables exist for


def test_tuned_environment_rules():
  base = {'JAX_PLATFORMS': 'cpu', 'HOME': '/h'}
  host = dict(system='Linux', libc=('glibc', '2.36'), huge_pages=True)

  def tuned(environ, **change):
    return malloc_tuning.tuned_environment(environ, **{**host, **change})

  assert tuned(base) == dict(base, GLIBC_TUNABLES='glibc.malloc.hugetlb=1')
  assert tuned(dict(base, JAX_PLATFORMS='cpu,cuda')) is not None
  for change in (dict(system='Darwin', libc=('', '')), dict(libc=('musl', '1.2')),
                 dict(libc=('glibc', '2.34')), dict(huge_pages=False)):
    assert tuned(base, **change) is None, change
  for environ in (dict(base, GLIBC_TUNABLES='glibc.malloc.arena_max=4'),  # the user's choice
                  dict(base, VISOPT_MALLOC_TUNING='0'),
                  dict(base, JAX_PLATFORMS='cuda'),
                  dict(base, JAX_PLATFORMS='tpu,cpu')):
    assert tuned(environ) is None, environ


@pytest.mark.parametrize('name', ENTRY_POINTS)
def test_entry_points_reexec_before_their_imports(name):
  path = os.path.join(ROOT, 'experiments', f'{name}.py')
  with open(path) as f:
    body = ast.parse(f.read()).body
  first_code = [n for n in body
                if not (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant))
                and not (isinstance(n, ast.ImportFrom) and n.module == '__future__')][0]
  assert isinstance(first_code, ast.If), f'{name}.py must re-exec before anything else'
  assert "__name__ == '__main__'" in ast.unparse(first_code.test)
  assert 'malloc_tuning.reexec_with_malloc_tunables()' in ast.unparse(first_code)
