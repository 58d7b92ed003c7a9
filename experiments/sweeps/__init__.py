"""Hyperparameter sweeps on Optuna: search spaces, the engine, the report.

`experiments.sweep` is the command line; `experiments.compare` builds on the
same engine. See engine.py for how trials are planned, claimed and resumed.
"""
