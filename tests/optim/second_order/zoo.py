"""Test functions of 2 variables (minimisation zoo) and least-squares problems.

One `switch`-dispatched objective per family keeps every case on a single
compiled loop: the case index is a traced argument (`minimize(..., args=)`).
"""
import jax
import jax.numpy as jnp
import numpy as np

_ROT = np.array([[np.cos(0.5), -np.sin(0.5)], [np.sin(0.5), np.cos(0.5)]])
# Ill-conditioned quadratic: eigenvalues 1 and 1e4 (condition number 1e4), rotated.
ILL_HESSIAN = _ROT @ np.diag([1.0, 1e4]) @ _ROT.T


def rosenbrock(x):
  return (1.0 - x[0]) ** 2 + 100.0 * (x[1] - x[0] ** 2) ** 2


def beale(x):
  a, b = x[0], x[1]
  return ((1.5 - a + a * b) ** 2 + (2.25 - a + a * b ** 2) ** 2
          + (2.625 - a + a * b ** 3) ** 2)


def himmelblau(x):
  return (x[0] ** 2 + x[1] - 11.0) ** 2 + (x[0] + x[1] ** 2 - 7.0) ** 2


def matyas(x):
  return 0.26 * (x[0] ** 2 + x[1] ** 2) - 0.48 * x[0] * x[1]


def zakharov(x):
  s = 0.5 * x[0] + 1.0 * x[1]
  return x[0] ** 2 + x[1] ** 2 + s ** 2 + s ** 4


def ill_quadratic(x):
  return 0.5 * x @ jnp.asarray(ILL_HESSIAN, x.dtype) @ x


FUNCTIONS = (rosenbrock, beale, himmelblau, matyas, zakharov, ill_quadratic)

# (name, index into FUNCTIONS, start)
CASES = (
    ('rosenbrock(-1.2,1)', 0, (-1.2, 1.0)),
    ('rosenbrock(0,0)', 0, (0.0, 0.0)),
    ('beale', 1, (1.0, 1.0)),
    ('himmelblau', 2, (1.0, 1.0)),
    ('matyas', 3, (10.0, -7.0)),
    ('zakharov', 4, (2.0, -1.5)),
    ('ill_quadratic', 5, (1.0, 1.0)),
)


def zoo(x, index):
  """FUNCTIONS[index](x), with a traced index."""
  return jax.lax.switch(index, FUNCTIONS, x)
