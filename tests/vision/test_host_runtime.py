"""The CPU host settings `import vision` applies (vision/host_runtime.py).

The claim: after `import vision`, a jitted call whose buffers exceed glibc's
mmap threshold reuses the heap pages of the previous call instead of mapping
and faulting in fresh ones. Checked in child processes (the dispatch
setting only applies before JAX starts), with and without the opt-out.
"""
import json
import os
import subprocess
import sys

import pytest

from vision import host_runtime

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Counts the minor page faults of jitted calls that allocate a 256 MB output each time.
_CHILD = r'''
import json, resource, sys
if sys.argv[1] == 'jax-first':
  import jax; jax.devices()
import vision
import jax, jax.numpy as jnp
f = jax.jit(lambda x: x + 1.0)
x = jnp.zeros((64 * 2 ** 20,), jnp.float32)
for _ in range(6):  # past compilation and the first calls' growth of the heap
  jax.block_until_ready(f(x))
faults = []
for _ in range(6):
  r0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
  y = jax.block_until_ready(f(x))
  del y
  faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - r0)
rt = vision.HOST_RUNTIME
print(json.dumps({'faults': faults, 'heap_kept': rt.heap_kept,
                  'inline': rt.inline_dispatch, 'reason': rt.reason}))
'''

ENTRY_MODULES = ('experiments.main', 'experiments.sweep', 'experiments.compare',
                 'experiments.benchmark', 'experiments.course.__main__')


def _env(**update: str) -> dict[str, str]:
  env = {k: v for k, v in os.environ.items()
         if k not in (host_runtime.OPT_OUT, host_runtime.DISPATCH_ENV, 'XLA_FLAGS')}
  env.update(JAX_PLATFORMS='cpu', PYTHONPATH=ROOT, **update)
  return env


def _child(mode: str, **env: str) -> dict:
  out = subprocess.run([sys.executable, '-c', _CHILD, mode], env=_env(**env), cwd=ROOT,
                       capture_output=True, text=True, timeout=300, check=True)
  return json.loads(out.stdout.strip().splitlines()[-1])


needs_glibc = pytest.mark.skipif(not host_runtime.applicable({'JAX_PLATFORMS': 'cpu'})[0],
                                 reason='needs Linux with glibc')


@needs_glibc
def test_import_keeps_large_buffers_in_the_heap():
  tuned = _child('vision-first')
  assert tuned['heap_kept'] and tuned['inline'], tuned
  # 256 MB = 65536 pages of 4 KiB. Measured: 0–30 faults a call, and under load
  # a call or two that grow the (never trimmed) heap while an older output is alive.
  assert sum(f < 2000 for f in tuned['faults']) >= 4, tuned
  plain = _child('vision-first', **{host_runtime.OPT_OUT: '0'})
  assert not plain['heap_kept'] and not plain['inline']
  assert plain['reason'] == f'{host_runtime.OPT_OUT}=0'
  assert sum(f > 30000 for f in plain['faults']) >= 4, plain  # what the settings prevent


@needs_glibc
def test_too_late_for_the_dispatch_setting_is_reported():
  late = _child('jax-first')
  assert late['heap_kept'] and not late['inline']
  assert 'initialised before vision' in late['reason']


@needs_glibc
def test_entry_points_import_vision_before_jax_starts():
  probe = ('import importlib, sys; importlib.import_module(sys.argv[1]); import vision; '
           'print(vision.HOST_RUNTIME.inline_dispatch)')
  procs = {m: subprocess.Popen([sys.executable, '-c', probe, m], env=_env(), cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
           for m in ENTRY_MODULES}
  for module, proc in procs.items():
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-2000:]
    assert out.strip().splitlines()[-1] == 'True', (module, out, err[-2000:])


def test_applicable_rules():
  base = {'JAX_PLATFORMS': 'cpu', 'HOME': '/h'}
  linux = dict(system='Linux', libc=('glibc', '2.36'))
  assert host_runtime.applicable(base, **linux) == (True, 'CPU host with glibc')
  assert host_runtime.applicable(dict(base, JAX_PLATFORMS='cpu,cuda'), **linux)[0]
  for change in (dict(system='Darwin', libc=('', '')), dict(libc=('musl', '1.2'))):
    assert not host_runtime.applicable(base, **{**linux, **change})[0], change
  for environ in (dict(base, VISOPT_MALLOC_TUNING='0'), dict(base, JAX_PLATFORMS='cuda'),
                  dict(base, JAX_PLATFORMS='tpu,cpu')):
    assert not host_runtime.applicable(environ, **linux)[0], environ


@needs_glibc
def test_users_own_dispatch_choice_is_kept():
  probe = 'import vision; rt = vision.HOST_RUNTIME; print(rt.inline_dispatch, rt.reason)'
  out = subprocess.run([sys.executable, '-c', probe], cwd=ROOT, capture_output=True, text=True,
                       env=_env(**{host_runtime.DISPATCH_ENV: 'true'}), timeout=300, check=True)
  assert out.stdout.strip().splitlines()[-1] == (
      f'False {host_runtime.DISPATCH_ENV} set by the user')
