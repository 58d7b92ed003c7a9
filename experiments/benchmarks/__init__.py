"""Benchmark sections for `python -m experiments.benchmark --only NAME`.

Each section module exposes `run(quick: bool) -> list[Measurement]`. A
measurement compares ours against a peer timed in the same process, so the
ratio, not the absolute figure, is the result.
"""
