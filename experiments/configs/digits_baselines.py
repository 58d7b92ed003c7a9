r"""The course's baselines on scikit-learn's 8×8 digits (bundled, no download).

    python -m experiments.main --config=experiments/configs/digits_baselines.py:model=softmax \
        --workdir=/tmp/digits_softmax
    ... :model=svm | mlp2 | mlp3 | convnet      (add ,runlocal for a smoke run)

Models (layers counted as in CS231n: a 2-layer net has one hidden layer):
  softmax   linear classifier s = Wx + b, softmax cross-entropy, L2 penalty λΣW².
  svm       the same linear classifier with the multiclass hinge loss
            Σ_{j≠y} max(0, s_j − s_y + 1) (Weston & Watkins), L2 penalty.
  mlp2      2-layer MLP: 128 ReLU hidden units, then the scorer.
  mlp3      3-layer MLP: two hidden layers of 128 ReLU units.
  convnet   [(CONV3×3-ReLU)×2 − MAXPOOL]×2 (16, 32 filters) − FC128 − FC.

All: momentum SGD (0.9) with cosine decay over 40 epochs of the 1,437 training
digits, batch 64, pixels standardized with the train-split mean/std; test
accuracy on the 360 held-out digits.

Results (measured here, final val/accuracy on the 360 test digits):
softmax 0.9694, svm 0.9556, mlp2 0.9722, mlp3 0.9750, convnet 0.9750
(wall 104-527 s each on the heavily shared 2-core machine).
"""
from __future__ import annotations

import ml_collections

from experiments.configs import common

MODELS = ('softmax', 'svm', 'mlp2', 'mlp3', 'convnet')
# Final val/accuracy of `python -m experiments.main` with this config.
RESULTS = {'softmax': 0.9694, 'svm': 0.9556, 'mlp2': 0.9722, 'mlp3': 0.9750,
           'convnet': 0.9750}


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """`model=<one of MODELS>[,runlocal]`."""
  args = common.parse_arg(arg, model='softmax', runlocal=False)
  if args.model not in MODELS:
    raise ValueError(f'model={args.model!r}; valid: {", ".join(MODELS)}')
  c = common.base_config()
  c.data.name = 'digits'
  c.data.image_size = 8
  c.batch_size = 64
  c.total_epochs = 40.0
  c.optimizer.name = 'sgd'
  c.optimizer.learning_rate = 0.05
  c.optimizer.momentum = 0.9
  c.schedule.name = 'cosine'
  c.schedule.warmup_steps = 20
  c.log_every = 20
  c.eval_every = 300
  c.checkpoint_every = 300
  if args.model in ('softmax', 'svm'):
    c.model.name = 'linear_classifier'
    c.model.overrides = ml_collections.ConfigDict(dict(weight_init='small'))
    c.loss = 'softmax_xent' if args.model == 'softmax' else 'hinge'
    c.reg.kind = 'l2'
    c.reg.strength = 1e-4
    c.optimizer.learning_rate = 0.02 if args.model == 'svm' else 0.05
  elif args.model in ('mlp2', 'mlp3'):
    c.model.name = 'mlp'
    c.model.overrides = ml_collections.ConfigDict(dict(
        depth=1 if args.model == 'mlp2' else 2, width=128, activation='relu'))
    c.reg.kind = 'l2'
    c.reg.strength = 1e-4
  else:
    c.model.name = 'convnet'
    c.model.overrides = ml_collections.ConfigDict(dict(
        channels=(16, 32), convs_per_block=2, fc_widths=(128,)))
    c.reg.kind = 'l2'
    c.reg.strength = 1e-4
  if args.runlocal:
    common.runlocal(c, steps=4, batch_size=32)
  return c
