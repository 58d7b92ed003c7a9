"""Training runs for the course experiments, through the trainer's public API.

    records = runs.train_records(config, workdir)   # the run's metrics.jsonl records

Runs in-process (`experiments.train.build` + `train_and_evaluate`) on one
device, so an experiment of several short runs pays the imports once. A run
that stops on NaN/Inf keeps the records it wrote and is marked `diverged`.
"""
from __future__ import annotations

import dataclasses
import io
import os
from typing import Any, Optional

import jax
import ml_collections


@dataclasses.dataclass
class Run:
  label: str
  records: list[dict[str, Any]]
  diverged: Optional[str]  # the trainer's message when the run hit NaN/Inf

  def series(self, key: str, x: str = 'step') -> tuple[list[float], list[float]]:
    from experiments import plots  # pylint: disable=g-import-not-at-top
    return plots.series(self.records, key, x)


def train_records(label: str, config: ml_collections.ConfigDict, workdir: str) -> Run:
  """Trains `config` into `workdir` on one device; returns its records."""
  from experiments import config_validation  # pylint: disable=g-import-not-at-top
  from experiments import metrics  # pylint: disable=g-import-not-at-top
  from experiments import train  # pylint: disable=g-import-not-at-top
  setup = train.build(config, devices=jax.local_devices()[:1])
  resume = config_validation.check_workdir(workdir, config)
  os.makedirs(workdir, exist_ok=True)
  if not resume:
    config_validation.write_config(workdir, config)
  diverged = None
  try:
    train.train_and_evaluate(setup, workdir, progress_stream=io.StringIO())
  except train.NonFiniteError as e:
    diverged = str(e)
  return Run(label, metrics.read_jsonl(os.path.join(workdir, metrics.METRICS_FILE)), diverged)


def workdir(out: str, experiment: str, label: str, quick: bool) -> str:
  """OUT/runs[_quick]/<experiment>/<label>: quick and full runs keep separate
  workdirs, so rerunning either resumes (and returns) its own records."""
  return os.path.join(out, 'runs_quick' if quick else 'runs', experiment,
                      label.replace(' ', '_').replace('/', '_'))
