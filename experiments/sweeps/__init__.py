"""Hyperparameter sweeps on Optuna: search spaces, the engine, the report.

`experiments.sweep` is the command line; `experiments.compare` builds on the
same engine. engine.py plans, claims and resumes trials in the Optuna study
(storage.py opens it); launcher.py runs each trial as a trainer process;
results.py scores a finished trial; report.py writes the table and plot.
Running workers on several machines: docs/sweeps.md.
"""
