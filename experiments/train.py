"""The trainer's public names, for `from experiments import train` (the code is in
`experiments/trainer/`: state, durations, optimizer, setup, step, evaluation, loop).

    setup = train.build(config)           # validates; builds data info, model, task, optimizer
    train.train_and_evaluate(setup, workdir)
"""
from experiments.trainer import *  # noqa: F401,F403
from experiments.trainer import __all__  # noqa: F401
