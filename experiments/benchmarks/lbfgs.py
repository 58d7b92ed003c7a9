"""Benchmark: `optim.minimize(method='lbfgs')` against scipy's L-BFGS-B.

Problem: L2-regularised multinomial logistic regression on scikit-learn's
digits (1797 × 64 features scaled to [0, 1], 10 classes, intercept
unpenalised; 650 parameters), float64, from zero. Ours runs the whole
optimisation as one jit-compiled `lax.while_loop`; the peer is
`scipy.optimize.minimize(method='L-BFGS-B', jac=True)` whose objective is
the same loss with a jitted `jax.value_and_grad`, i.e. one compiled call per
evaluation plus the Fortran L-BFGS-B driver. Both stop on the same test,
‖∇f‖_∞ ≤ gtol, with memory 10 (scipy's `ftol` is set negligible so it does
not stop earlier on a flat loss). Reported: wall time per full solve after
compilation (interleaved), ratio = scipy / ours (> 1: ours faster); compile
time, iterations, evaluations, final losses and CPU seconds per solve (a
load-insensitive second opinion) in `extra`.

    python -m experiments.benchmark --only optim [--quick]
"""
from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
from scipy import optimize
from sklearn import datasets

import optim
from experiments.benchmarks.common import Measurement
from experiments.benchmarks.common import interleaved_times

SECTION = 'optim'
GTOL = 1e-6
MEMORY = 10


def _loss(params, x, y, l2):
  """Mean softmax cross-entropy + ½·l2·‖W‖² (bias unpenalised)."""
  logits = x @ params['w'] + params['b']
  nll = -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], axis=1))
  return nll + 0.5 * l2 * jnp.sum(params['w'] ** 2)


def run(quick: bool) -> list[Measurement]:
  """Times one full solve each way; see the module docstring."""
  digits = datasets.load_digits()
  with jax.enable_x64(True):
    x = jnp.asarray(digits.data / 16.0, jnp.float64)
    y = jnp.asarray(digits.target, jnp.int32)
    n, d, c = x.shape[0], x.shape[1], 10
    l2 = 1.0 / n  # sklearn C = 1
    args = (x, y, jnp.float64(l2))
    params0 = {'w': jnp.zeros((d, c), jnp.float64), 'b': jnp.zeros((c,), jnp.float64)}

    def ours():
      return optim.minimize(_loss, params0, method='lbfgs', args=args, tol=GTOL, maxiter=2000,
                            options={'memory_size': MEMORY})

    @jax.jit
    def value_and_grad_flat(z):
      params = {'w': z[:d * c].reshape(d, c), 'b': z[d * c:]}
      value, grad = jax.value_and_grad(_loss)(params, *args)
      return value, jnp.concatenate([grad['w'].ravel(), grad['b']])

    def scipy_fun(z):
      value, grad = value_and_grad_flat(jnp.asarray(z))
      return float(value), np.asarray(grad, np.float64)

    z0 = np.zeros(d * c + c)

    def peer():
      return optimize.minimize(scipy_fun, z0, jac=True, method='L-BFGS-B',
                               options={'gtol': GTOL, 'ftol': 1e-15, 'maxcor': MEMORY,
                                        'maxiter': 2000, 'maxfun': 10000})

    t0 = time.perf_counter()
    res = ours()
    jax.block_until_ready(res.x)
    first = time.perf_counter() - t0
    ref = peer()  # also compiles value_and_grad_flat
    times = interleaved_times({'ours': lambda: ours().x, 'scipy': lambda: peer().x},
                              repeats=3 if quick else 10, warmup=1)
    # CPU seconds (all threads) per solve: less sensitive than wall time to
    # other processes on a shared machine.
    cpu = {}
    for key, fn in (('ours', lambda: jax.block_until_ready(ours().x)), ('scipy', peer)):
      c0 = time.process_time()
      for _ in range(2):
        fn()
      cpu[key] = (time.process_time() - c0) / 2
    extra = {
        'compile_s': first - times['ours'],
        'iterations_ours': int(res.iterations), 'iterations_scipy': int(ref.nit),
        'nfev_ours': int(res.nfev), 'nfev_scipy': int(ref.nfev),
        'loss_ours': float(res.fun), 'loss_scipy': float(ref.fun),
        'converged_ours': bool(res.converged), 'scipy_message': str(ref.message),
        'cpu_s_ours': cpu['ours'], 'cpu_s_scipy': cpu['scipy'],
        'cpu_ratio': cpu['scipy'] / cpu['ours'],
        'gtol': GTOL, 'params': d * c + c, 'examples': n,
    }
  return [Measurement(SECTION, 'minimize lbfgs digits logreg (solve)', times['ours'],
                      times['scipy'], 's', 'scipy L-BFGS-B + jitted jax grad', extra=extra)]
