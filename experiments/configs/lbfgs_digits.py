r"""Full-batch, deterministic training on digits: L-BFGS, BFGS, Newton, Newton-CG, GD and Adam.

The course's advice, "if you can afford full-batch updates, try L-BFGS, and
disable all sources of noise": every step sees the whole training split (1,437
digits) in a fixed order, with no augmentation and no dropout, so the
objective J(θ) = mean cross-entropy + λ‖W‖² is a deterministic function and a
line search can be trusted. Second-order methods choose their own step
(`optimizer.learning_rate=None`); GD and Adam use a fixed learning rate.

    python -m experiments.main \
        --config=experiments/configs/lbfgs_digits.py:model=softmax,optimizer=lbfgs \
        --workdir=/tmp/fb_softmax_lbfgs
    ... model=softmax | mlp      optimizer=lbfgs | bfgs | newton | newton_cg | gd_linesearch
                                           | gd | adam
    ... ,steps=200               (run length; ,runlocal for a smoke run)

Any second-order method of `optim.create` (and its line search) from the command line:

    python -m experiments.main --config=experiments/configs/lbfgs_digits.py \
        --config.optimizer.name=newton --workdir=/tmp/fb_softmax_newton
    ... --config.optimizer.name=bfgs | newton_cg | gd_linesearch
    ... --config.optimizer.linesearch=zoom | backtracking | exact

Loss against iterations and against wall time, one line per optimizer (the
trainer's full-batch mode for every arm; first-order arms get the small
learning-rate grid below, second-order arms none):

    python -m experiments.compare --config=experiments/configs/lbfgs_digits.py:model=softmax \
        --workdir=/tmp/fb_compare_softmax --optimizers=lbfgs,newton_cg,sgd,adam --seeds=1
    # -> /tmp/fb_compare_softmax/compare.png (train loss and val accuracy vs step
    #    and vs wall time), compare.csv

Models: `softmax` is the linear classifier s = Wx + b (a convex problem);
`mlp` is the 2-layer MLP (128 ReLU units). Both with L2 penalty 1e-4.

Measured (softmax, steps=60, 2-core CPU, one device): final train objective /
val accuracy — lbfgs 0.0417 / 0.958, newton_cg 0.0411 / 0.961, gd (lr 0.5)
0.185 / 0.956, adam (lr 0.01) 0.198 / 0.950: per step, the second-order
methods are ~4.5x lower in objective.
"""
from __future__ import annotations

import ml_collections

from experiments.configs import common

MODELS = ('softmax', 'mlp')
# optimizer name -> the optimizer section (optim.create name and hyper-parameters).
# Second-order ones differentiate the trainer's value_fn over the device axis
# 'batch': axis_name makes their derivatives global (optim docs). Their sections
# hold only keywords every second-order minimiser takes, so that
# --config.optimizer.name=<another one> works on any of them.
SECOND_ORDER = {'learning_rate': None, 'axis_name': 'batch'}
OPTIMIZERS = {
    'lbfgs': {'name': 'lbfgs', **SECOND_ORDER},
    'bfgs': {'name': 'bfgs', **SECOND_ORDER},
    'newton': {'name': 'newton', **SECOND_ORDER},
    'newton_cg': {'name': 'newton_cg', **SECOND_ORDER, 'max_cg_iters': 20},
    'gd_linesearch': {'name': 'gd_linesearch', **SECOND_ORDER},
    'gd': {'name': 'sgd', 'learning_rate': 0.5},
    'adam': {'name': 'adam', 'learning_rate': 0.01},
}


def full_batch_digits(steps: int) -> ml_collections.ConfigDict:
  """The deterministic full-batch digits run these configs share: whole train split per
  step, no augmentation, constant schedule, L2 penalty 1e-4, `steps` steps."""
  if steps < 1:
    raise ValueError(f'steps={steps!r}; must be a positive integer')
  c = common.base_config()
  c.data.name = 'digits'
  c.data.image_size = 8
  c.data.augment = 'none'
  c.full_batch = True
  c.batch_size = 1437  # the whole train split (full_batch uses it regardless)
  c.eval_batch_size = 360  # the whole eval split, divisible by 1, 2, 4, 8 devices
  c.total_steps = steps
  c.schedule.name = 'constant'
  c.reg.kind = 'l2'
  c.reg.strength = 1e-4
  c.log_every = 1
  c.checkpoint_every = steps
  return c


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """`model=softmax|mlp,optimizer=<OPTIMIZERS key>[,steps=N][,runlocal]`."""
  args = common.parse_arg(arg, model='softmax', optimizer='lbfgs', steps=200, runlocal=False)
  if args.model not in MODELS:
    raise ValueError(f'model={args.model!r}; valid: {", ".join(MODELS)}')
  if args.optimizer not in OPTIMIZERS:
    raise ValueError(f'optimizer={args.optimizer!r}; valid: {", ".join(OPTIMIZERS)}')
  c = full_batch_digits(args.steps)
  c.optimizer = ml_collections.ConfigDict(OPTIMIZERS[args.optimizer])
  if args.model == 'softmax':
    c.model.name = 'linear_classifier'
  else:
    c.model.name = 'mlp'
    c.model.overrides = ml_collections.ConfigDict(dict(depth=1, width=128, activation='relu'))
  c.eval_every = max(1, args.steps // 10)
  c.compare = ml_collections.ConfigDict()
  c.compare.optimizers = ['lbfgs', 'newton_cg', 'sgd', 'adam']
  c.compare.lr_grid = [1e-2, 1e-1, 1.0]
  c.compare.seeds = 1
  c.compare.metric = 'val/accuracy'
  c.compare.target = 0.95
  c.compare.second_order_steps = args.steps
  if args.runlocal:
    c.total_steps = 3
    c.eval_every = 3
    c.checkpoint_every = 3
    c.compare.lr_grid = [1e-1]
    c.compare.second_order_steps = 3
  return c
