r"""Gradient check: jax.grad (and its Hessian-vector products) against centred
finite differences, in float64.

    python -m experiments.gradcheck --model=mlp
    python -m experiments.gradcheck --model=vit_tiny_patch16_224 --img_size=32 \
        --override=patch_size=8 --override=depth=2 --coords=8

For a registered model with parameters θ (initialised, then cast to float64,
computation in float64), a fixed input batch x and a fixed random tensor R
of the output's shape, the scalar L(θ) = Σ f(x; θ) ⊙ R exercises every
gradient path. For `--coords` random coordinates i of every parameter
tensor (all of them for small tensors),

    numeric_i  = (L(θ + h eᵢ) − L(θ − h eᵢ)) / 2h                 (error O(h²))
    rel_err_i  = |analytic_i − numeric_i| / max(|analytic_i|, |numeric_i|, tiny)

and the report gives the max relative error per parameter tensor. The
course's reading: < 1e-7 good, up to 1e-4 suspicious for smooth models (kinks
such as ReLU can cost more), above that the gradient is wrong.

Second order (`--second_order`, on by default): the gradient of the
gradient along a random unit direction v, the Hessian-vector product
Hv = ∂/∂ε ∇L(θ + εv)|₀, computed by forward-over-reverse differentiation
(`jax.jvp` of `jax.grad`), against centred differences of the gradient,

    (∇L(θ + h v) − ∇L(θ − h v)) / 2h                             (error O(h²))

with, per parameter tensor, the norm-wise relative error
‖Hv − numeric‖∞ / max(‖Hv‖∞, ‖numeric‖∞, tiny) (coordinates of Hv are often
near zero, e.g. across a ReLU, where a per-coordinate ratio is
meaningless).

Exit status: 0 if every parameter's max error (first and second order) is
below `--threshold`, 1 otherwise, 2 for bad arguments (one line).
"""
from __future__ import annotations

import ast
import dataclasses
import sys
from typing import Any, Callable, Optional, Sequence

import numpy as np

TINY = 1e-12


@dataclasses.dataclass(frozen=True)
class ParamReport:
  path: str
  shape: tuple[int, ...]
  checked: int
  max_rel_error: float
  max_abs_grad: float


def _path_name(path: Sequence[Any]) -> str:
  return '/'.join(str(getattr(k, 'key', getattr(k, 'idx', k))) for k in path)


def check_function(loss: Callable[[Any], Any], params: Any, coords: int = 16,
                   h: float = 1e-6, seed: int = 0, chunk: int = 32) -> list[ParamReport]:
  """Checks jax.grad(loss) at `params` (a float64 pytree) coordinate-wise.

  All checked coordinates go through one jit-compiled, vmapped evaluation of
  L(θ ± h eᵢ) on the raveled parameter vector, `chunk` coordinates at a time.
  """
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from jax.flatten_util import ravel_pytree  # pylint: disable=g-import-not-at-top

  if not jax.config.jax_enable_x64:
    raise ValueError('check_function needs jax_enable_x64 (float64 finite differences)')
  flat, unravel = ravel_pytree(params)
  if flat.dtype != jnp.float64:
    raise ValueError(f'params are {flat.dtype}; cast them to float64 first')
  leaves = jax.tree_util.tree_flatten_with_path(params)[0]
  rng = np.random.default_rng(seed)
  index, owner, offset = [], [], 0
  for j, (_, leaf) in enumerate(leaves):
    n = int(np.prod(leaf.shape))
    pick = np.arange(n) if n <= coords else np.sort(rng.choice(n, coords, replace=False))
    index.extend(offset + pick)
    owner.extend([j] * len(pick))
    offset += n
  index = np.asarray(index, np.int64)
  owner = np.asarray(owner)

  flat_loss = lambda v: loss(unravel(v))  # noqa: E731
  analytic = np.asarray(jax.jit(jax.grad(flat_loss))(flat))[index]

  @jax.jit
  def central(idx):
    def one(i):
      e = jnp.zeros_like(flat).at[i].set(h)
      return (flat_loss(flat + e) - flat_loss(flat - e)) / (2 * h)
    return jax.vmap(one)(idx)

  pad = (-len(index)) % chunk
  padded = np.concatenate([index, np.zeros(pad, np.int64)]).reshape(-1, chunk)
  numeric = np.concatenate([np.asarray(central(jnp.asarray(c))) for c in padded])[:len(index)]
  rel = np.abs(analytic - numeric) / np.maximum(np.maximum(np.abs(analytic), np.abs(numeric)),
                                                 TINY)
  reports = []
  for j, (path, leaf) in enumerate(leaves):
    mask = owner == j
    reports.append(ParamReport(_path_name(path), tuple(leaf.shape), int(mask.sum()),
                               float(rel[mask].max()), float(np.abs(analytic[mask]).max())))
  return reports


def check_hvp(loss: Callable[[Any], Any], params: Any, h: float = 1e-5,
              seed: int = 0) -> list[ParamReport]:
  """Checks the Hessian-vector product of `loss` at `params` (float64) along a
  random unit direction against centred differences of jax.grad (module
  docstring); `checked` counts the tensor's coordinates."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from jax.flatten_util import ravel_pytree  # pylint: disable=g-import-not-at-top

  if not jax.config.jax_enable_x64:
    raise ValueError('check_hvp needs jax_enable_x64 (float64 finite differences)')
  flat, unravel = ravel_pytree(params)
  if flat.dtype != jnp.float64:
    raise ValueError(f'params are {flat.dtype}; cast them to float64 first')
  v = jax.random.normal(jax.random.PRNGKey(seed), flat.shape, jnp.float64)
  v = v / jnp.linalg.norm(v)
  grad = jax.grad(lambda w: loss(unravel(w)))

  @jax.jit
  def both(w):
    analytic = jax.jvp(grad, (w,), (v,))[1]
    numeric = (grad(w + h * v) - grad(w - h * v)) / (2 * h)
    return analytic, numeric

  analytic, numeric = (np.asarray(a) for a in both(flat))
  reports, offset = [], 0
  for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
    n = int(np.prod(leaf.shape))
    a, b = analytic[offset:offset + n], numeric[offset:offset + n]
    scale = max(np.abs(a).max(initial=0.0), np.abs(b).max(initial=0.0), TINY)
    reports.append(ParamReport(_path_name(path), tuple(leaf.shape), n,
                               float(np.abs(a - b).max(initial=0.0) / scale),
                               float(np.abs(a).max(initial=0.0))))
    offset += n
  return reports


def check_model(name: str, overrides: Optional[dict[str, Any]] = None,
                img_size: Optional[int] = None, batch: int = 2, coords: int = 16,
                h: float = 1e-6, seed: int = 0, second_order: bool = False
                ) -> tuple[list[ParamReport], list[str]]:
  """Gradient check of the registered model `name` (see module docstring);
  with `second_order` the reports of `check_hvp` follow, their paths
  prefixed 'Hv:'.

  Needs float64 enabled (`jax.config.update('jax_enable_x64', True)`).

  Returns:
    The per-tensor reports, and the primitives that still compute in float32
    (empty when the check is float64 end to end).
  """
  import dataclasses as dc  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  import vision  # pylint: disable=g-import-not-at-top

  if batch < 1 or coords < 1 or not h > 0:
    raise ValueError(f'batch={batch}, coords={coords}, h={h}: need batch >= 1, coords >= 1, '
                     'h > 0')
  overrides = dict(overrides or {})
  fields = {f.name for f in dc.fields(vision.get_model_def(name).cls)}
  if img_size is not None:
    overrides['img_size'] = img_size
  if 'dtype' in fields:
    overrides.setdefault('dtype', jnp.float64)
  module = vision.create_model(name, **overrides)
  size = getattr(module, 'img_size', 224)
  size = (size, size) if isinstance(size, int) else tuple(size)
  chans = getattr(module, 'in_chans', 3)
  kx, kp, kr = jax.random.split(jax.random.PRNGKey(seed), 3)
  x = jax.random.normal(kx, (batch, *size, chans), jnp.float64)
  variables = module.init(kp, x, train=False)
  variables = jax.tree.map(lambda a: a.astype(jnp.float64)
                           if jnp.issubdtype(a.dtype, jnp.floating) else a, variables)
  params = variables['params']
  rest = {k: v for k, v in variables.items() if k != 'params'}
  def forward(p):
    # Models return float32 logits (for mixed precision); the float64 output
    # of the `head` submodule, when there is one, is read instead.
    out, state = module.apply({'params': p, **rest}, x, train=False,
                              capture_intermediates=lambda m, _: m.name == 'head',
                              mutable=['intermediates'])
    head = state.get('intermediates', {}).get('head', {}).get('__call__')
    if out.dtype != jnp.float64 and head and head[0].shape == out.shape:
      return head[0]
    return out

  out_shape = jax.eval_shape(forward, params)
  r = jax.random.normal(kr, out_shape.shape, jnp.float64)

  def loss(p):
    return jnp.sum(forward(p) * r)

  reports = check_function(loss, params, coords=coords, h=h, seed=seed)
  if second_order:
    reports += [dataclasses.replace(r, path=f'Hv:{r.path}')
                for r in check_hvp(loss, params, seed=seed)]
  return reports, float32_ops(loss, params)


def float32_ops(fn: Callable[[Any], Any], *args: Any) -> list[str]:
  """Primitives of fn's jaxpr (nested ones included) that produce float32
  values: where a float64 check loses precision."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from jax.extend import core as jax_core  # pylint: disable=g-import-not-at-top
  found: set[str] = set()

  def walk(jaxpr):
    for eqn in jaxpr.eqns:
      if any(getattr(v.aval, 'dtype', None) == jnp.float32 for v in eqn.outvars):
        found.add(str(eqn.primitive))
      for sub in jax_core.jaxprs_in_params(eqn.params):
        walk(sub)

  jaxpr = jax.make_jaxpr(fn)(*args).jaxpr
  # Drop top-level equations whose results are never used (e.g. a final cast
  # of logits that the loss bypasses).
  live = {v for v in jaxpr.outvars if hasattr(v, 'aval') and not hasattr(v, 'val')}
  kept = []
  for eqn in reversed(jaxpr.eqns):
    if any(v in live for v in eqn.outvars) or eqn.effects:
      kept.append(eqn)
      live.update(v for v in eqn.invars if not hasattr(v, 'val'))
  walk(jaxpr.replace(eqns=kept[::-1]))
  return sorted(found)


def format_report(reports: Sequence[ParamReport]) -> str:
  width = max(len(r.path) for r in reports)
  lines = [f'{"parameter".ljust(width)}  {"shape":>18}  {"checked":>7}  {"max rel err":>11}']
  for r in reports:
    lines.append(f'{r.path.ljust(width)}  {str(r.shape):>18}  {r.checked:>7}  '
                 f'{r.max_rel_error:11.3e}')
  worst = max(reports, key=lambda r: r.max_rel_error)
  lines.append(f'max relative error {worst.max_rel_error:.3e} ({worst.path}); '
               f'{sum(r.checked for r in reports)} coordinates in {len(reports)} tensors')
  return '\n'.join(lines)


def _parse_override(text: str) -> tuple[str, Any]:
  key, sep, value = text.partition('=')
  if not sep or not key:
    raise ValueError(f'--override={text!r}: expected key=value, e.g. depth=2')
  try:
    return key, ast.literal_eval(value)
  except (ValueError, SyntaxError):
    return key, value


def parse_flags(argv: Sequence[str]) -> Any:
  """The command line in a fresh absl FlagValues (so `main` can run more than once)."""
  from absl import flags  # pylint: disable=g-import-not-at-top
  fv = flags.FlagValues()
  flags.DEFINE_string('model', None, 'A registered model name.', flag_values=fv)
  flags.DEFINE_multi_string('override', [], 'Model field key=value (repeatable).',
                            flag_values=fv)
  flags.DEFINE_integer('img_size', None, 'Input size (default: the model\'s).', flag_values=fv)
  flags.DEFINE_integer('batch', 2, 'Input batch.', flag_values=fv)
  flags.DEFINE_integer('coords', 16, 'Coordinates checked per parameter tensor.', flag_values=fv)
  flags.DEFINE_float('h', 1e-6, 'Finite-difference step of the first-order check.',
                     flag_values=fv)
  flags.DEFINE_float('threshold', 1e-6, 'Largest relative error that passes.', flag_values=fv)
  flags.DEFINE_integer('seed', 0, 'Seed of the input, parameters and coordinates.',
                       flag_values=fv)
  flags.DEFINE_bool('second_order', True, 'Also check Hessian-vector products.',
                    flag_values=fv)
  fv(list(argv))
  if not fv.model:
    raise flags.Error('--model is required: a registered model name')
  return fv


def main(argv: Sequence[str]) -> int:
  from absl import flags  # pylint: disable=g-import-not-at-top
  try:
    args = parse_flags(argv)
  except flags.Error as e:
    print(f'error: {" ".join(str(e).split())}', file=sys.stderr)
    return 2
  import jax  # pylint: disable=g-import-not-at-top
  jax.config.update('jax_enable_x64', True)
  try:
    overrides = dict(_parse_override(o) for o in args.override)
    reports, f32 = check_model(args.model, overrides, args.img_size, args.batch, args.coords,
                               args.h, args.seed, second_order=args.second_order)
  except ValueError as e:
    print(f'error: {" ".join(str(e).split())}', file=sys.stderr)
    return 2
  print(format_report(reports))
  if f32:
    print(f'note: the model still computes some values in float32 ({", ".join(f32)}); '
          'errors near 1e-4 then reflect float32 rounding, not a wrong gradient')
  worst = max(r.max_rel_error for r in reports)
  print('PASS' if worst < args.threshold else f'FAIL (threshold {args.threshold:g})')
  return 0 if worst < args.threshold else 1


if __name__ == '__main__':
  sys.exit(main(sys.argv))
