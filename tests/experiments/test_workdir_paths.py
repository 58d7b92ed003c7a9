"""The workdir path layer (experiments/workdir_paths.py) on local paths.

A run whose workdir is given as an `epath.Path` writes every file a run
writes (config.json, metrics.jsonl, events, curves.png, checkpoints with
their checksums) and resumes, from a relative path string, to the same
metrics as a run that was never interrupted. Object-store URIs are only
parsed here (no credentials in CI): they keep their scheme and skip the lock.
"""
from __future__ import annotations

import json
import os
import shutil

from etils import epath

from experiments import checkpointing
from experiments import config_schema
from experiments import config_validation
from experiments import metrics
from experiments import workdir_lock
from experiments import workdir_paths
from tests.experiments.test_train import run
from tests.experiments.test_train import tiny_config


def test_local_paths_are_absolute_and_uris_keep_their_scheme(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  assert workdir_paths.is_local('runs/a') and workdir_paths.is_local(tmp_path)
  assert workdir_paths.path('runs/a') == epath.Path(tmp_path / 'runs' / 'a')
  for uri in ('gs://bucket/runs/a', 's3://bucket/a'):
    assert not workdir_paths.is_local(uri)
    assert str(workdir_paths.path(uri)) == uri
    assert str(workdir_paths.path(uri) / 'metrics.jsonl') == uri + '/metrics.jsonl'
  lock = workdir_lock.WorkdirLock('gs://bucket/runs/a')
  with lock:  # no flock on an object store: skipped, nothing touched
    assert lock._fd is None  # pylint: disable=protected-access


def test_atomic_write_replaces_and_leaves_no_temporary(tmp_path):
  target = tmp_path / 'best.json'
  workdir_paths.write_text_atomically(str(target), '{"a": 1}')
  workdir_paths.write_text_atomically(epath.Path(target), '{"a": 2}')
  assert json.loads(target.read_text()) == {'a': 2}
  assert os.listdir(tmp_path) == ['best.json']


def test_run_in_an_epath_workdir_writes_everything_and_resumes(tmp_path, monkeypatch):
  config = tiny_config(total_steps=6, eval_every=3, checkpoint_every=3)
  workdir = epath.Path(tmp_path / 'through_epath')
  workdir.mkdir()
  config_validation.write_config(workdir, config_schema.settle(config))
  straight = run(config, workdir)
  assert [r['step'] for r in straight] == [1, 2, 3, 4, 5, 6]
  assert config_validation.check_workdir(str(workdir), config_schema.settle(config))
  names = sorted(p.name for p in workdir.iterdir())
  assert {'config.json', 'metrics.jsonl', 'curves.png', '.lock', 'checkpoints'} <= set(names)
  assert any(n.startswith('events.out.tfevents.') for n in names)
  for step in (3, 6):
    assert (workdir / 'checkpoints' / str(step) / checkpointing.CHECKSUM_FILE).exists()

  shutil.rmtree(workdir / 'checkpoints' / '6')  # as if killed after the step-3 checkpoint
  monkeypatch.chdir(tmp_path)
  resumed = run(config, 'through_epath')
  strip = lambda rs: [{k: v for k, v in r.items() if k not in metrics.TIMING_KEYS} for r in rs]
  assert strip(resumed) == strip(straight)
