"""Experiment configs: `get_config(arg=None)` files for `python -m experiments.main --config=`."""
