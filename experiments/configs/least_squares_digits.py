r"""Least-squares training on digits: Gauss-Newton and Levenberg-Marquardt from the trainer.

The objective is a sum of squares: the l2 loss ½‖s − onehot(y)‖² averaged over
the whole training split (1,437 digits, full batch) plus the L2 penalty
λ‖W‖², i.e. J(θ) = ½‖r(θ)‖² with residuals r = [√(1/N)(s_i − t_i)]_i and
√(2λ)·W. The trainer hands `residual_fn` (θ ↦ r) to the optimizer's update;
each step solves the Gauss-Newton normal equations (JᵀJ + μD)δ = −Jᵀr
(Levenberg-Marquardt, Nielsen's damping; Gauss-Newton: μ = 0), as
`optim.least_squares` does on the same residuals.

    python -m experiments.main \
        --config=experiments/configs/least_squares_digits.py:optimizer=levenberg_marquardt \
        --workdir=/tmp/ls_linear_lm
    ... model=linear | mlp     optimizer=levenberg_marquardt | levenberg | gauss_newton
    ... ,steps=20              (run length; ,runlocal for a smoke run)

Models: `linear` is s = Wx + b, a linear least-squares problem (Gauss-Newton
solves it in one step); `mlp` is a 1-hidden-layer MLP (16 tanh units: J has
N·10 + n rows for n ≈ 1.2k parameters, small enough for a dense Cholesky).
"""
from __future__ import annotations

import ml_collections

from experiments.configs import common
from experiments.configs import lbfgs_digits

MODELS = ('linear', 'mlp')
OPTIMIZERS = ('levenberg_marquardt', 'levenberg', 'gauss_newton')


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """`model=linear|mlp,optimizer=<OPTIMIZERS>[,steps=N][,runlocal]`."""
  args = common.parse_arg(arg, model='linear', optimizer='levenberg_marquardt', steps=20,
                          runlocal=False)
  if args.model not in MODELS:
    raise ValueError(f'model={args.model!r}; valid: {", ".join(MODELS)}')
  if args.optimizer not in OPTIMIZERS:
    raise ValueError(f'optimizer={args.optimizer!r}; valid: {", ".join(OPTIMIZERS)}')
  c = lbfgs_digits.full_batch_digits(args.steps)
  c.loss = 'l2'
  c.optimizer = ml_collections.ConfigDict({'name': args.optimizer, 'learning_rate': None})
  if args.model == 'linear':
    c.model.name = 'linear_classifier'
  else:
    c.model.name = 'mlp'
    c.model.overrides = ml_collections.ConfigDict(dict(depth=1, width=16, activation='tanh'))
  c.eval_every = max(1, args.steps // 5)
  if args.runlocal:
    c.total_steps = 3
    c.eval_every = 3
    c.checkpoint_every = 3
  return c
