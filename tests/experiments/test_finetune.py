"""Fine-tuning through the trainer: `config.init_from` in build, the loop and the command line.

Oracles: the source run's own metrics and checkpoint (evaluation-only runs
reproduce its eval metrics exactly; frozen parameters stay bit-identical),
and a random HuggingFace `ViTForImageClassification` (its logits at a new
resolution with `interpolate_pos_encoding=True`).
"""
from __future__ import annotations

import io
import os
import subprocess
import sys

import jax
import ml_collections
import numpy as np
import pytest
import torch
from transformers import ViTConfig
from transformers import ViTForImageClassification

from experiments import checkpointing
from experiments import metrics
from experiments import train
from experiments.configs import default
from tests.vision import test_resize as resize_helpers

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TINY = dict(patch_size=8, embed_dim=24, depth=2, num_heads=2, mlp_ratio=2.0)
# A random HF ViT of another class count (7) and resolution (48 px) than digits' 10 / 32 px.
HF_VIT = dict(hidden_size=48, num_hidden_layers=2, num_attention_heads=3, intermediate_size=192,
              image_size=48, patch_size=8, num_labels=7, hidden_act='gelu')
OUR_VIT = dict(patch_size=8, embed_dim=48, depth=2, num_heads=3, mlp_ratio=4.0)


def _config(steps: int = 6, **overrides) -> ml_collections.ConfigDict:
  c = default.get_config('runlocal')
  c.model.overrides.update(TINY)
  c.data.image_size = 16
  c.total_steps = steps
  c.eval_every = steps
  c.checkpoint_every = steps
  c.batch_size = c.eval_batch_size = 32
  for key, value in overrides.items():
    *parents, leaf = key.split('.')
    target = c
    for part in parents:
      target = target[part]
    target[leaf] = value
  return c


def _train(config, workdir) -> dict:
  setup = train.build(config, devices=jax.local_devices()[:1])
  return train.train_and_evaluate(setup, workdir, progress_stream=io.StringIO())


def _restore(workdir: str, step: int) -> dict:
  from experiments import init_from  # pylint: disable=g-import-not-at-top
  return init_from.read_workdir(workdir, step)['params']


@pytest.fixture(scope='module')
def source(tmp_path_factory):
  """A short digits run: the workdir the other runs start from."""
  workdir = str(tmp_path_factory.mktemp('finetune') / 'source')
  _train(_config(), workdir)
  return workdir


def _val(record: dict) -> dict:
  return {k: v for k, v in record.items() if k.startswith('val/')}


def test_total_steps_0_reproduces_the_source_runs_eval_metrics(source, tmp_path):
  want = _val(metrics.read_jsonl(os.path.join(source, metrics.METRICS_FILE))[-1])
  assert want
  workdir = str(tmp_path / 'eval')
  record = _train(_config(steps=0, **{'init_from.path': source}), workdir)
  assert _val(record) == want  # exactly: the same weights, data and eval step
  logged = metrics.read_jsonl(os.path.join(workdir, metrics.METRICS_FILE))
  assert [r['step'] for r in logged] == [0] and _val(logged[0]) == want
  assert not checkpointing.Checkpointer(workdir).latest_step()  # nothing trained


def test_total_steps_0_needs_init_from():
  with pytest.raises(ValueError, match='evaluation-only run and needs init_from.path'):
    train.build(_config(steps=0), devices=jax.local_devices()[:1])


def test_linear_probe_keeps_frozen_parameters_bit_identical(source, tmp_path):
  start = _restore(source, 6)
  workdir = str(tmp_path / 'probe')
  config = _config(steps=4, **{'init_from.path': source})
  config.optimizer.freeze = ('^(?!head/)',)
  setup = train.build(config, devices=jax.local_devices()[:1])
  for got, want in zip(jax.tree.leaves(setup.initial_variables['params']),
                       jax.tree.leaves(start)):
    np.testing.assert_array_equal(got, want)
  train.train_and_evaluate(setup, workdir, progress_stream=io.StringIO())
  end = _restore(workdir, 4)
  flat_start = dict(jax.tree_util.tree_flatten_with_path(start)[0])
  changed = []
  for path, value in jax.tree_util.tree_flatten_with_path(end)[0]:
    name = jax.tree_util.keystr(path)
    if name.startswith("['head']"):
      changed.append(not np.array_equal(value, flat_start[path]))
    else:
      np.testing.assert_array_equal(value, flat_start[path], err_msg=name)
  assert changed and all(changed)  # the head trained


def _hf_directory(path: str) -> ViTForImageClassification:
  torch.manual_seed(0)
  model = ViTForImageClassification(ViTConfig(**HF_VIT)).eval()
  resize_helpers.randomize(model, 0)
  model.save_pretrained(path)
  return model


def test_hf_vit_head_reinitialised_and_logits_equal_interpolate_pos_encoding(tmp_path):
  directory = str(tmp_path / 'hf_vit')
  model = _hf_directory(directory)
  config = default.get_config('runlocal')
  config.model.overrides.update({**OUR_VIT, 'norm_eps': 1e-12})
  config.data.channels = 3
  config.init_from.path = directory
  setup = train.build(config, devices=jax.local_devices()[:1])
  variables = setup.initial_variables
  head = variables['params']['head']
  assert head['kernel'].shape == (48, 10)  # digits' 10 classes, not the checkpoint's 7
  assert not np.any(head['kernel']) and not np.any(head['bias'])
  # Put HF's 7-class classifier into the first 7 columns: logits there must equal HF's
  # at 32 px with interpolated position embeddings (48 px checkpoint).
  w = model.classifier.weight.detach().numpy().T
  b = model.classifier.bias.detach().numpy()
  params = jax.tree.map(np.array, variables['params'])
  params['head']['kernel'][:, :7] = w
  params['head']['bias'][:7] = b
  x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(3))
  with torch.no_grad():
    want = model(x, interpolate_pos_encoding=True).logits.numpy()
  got = np.asarray(setup.module.apply({**variables, 'params': params},
                                      x.permute(0, 2, 3, 1).numpy(), train=False))
  np.testing.assert_allclose(got[:, :7], want, atol=1e-4, rtol=0)


def _run_main(args):
  return subprocess.run([sys.executable, '-m', 'experiments.main', *args], cwd=ROOT,
                        capture_output=True, text=True, timeout=600)


def test_hf_vit_fine_tunes_on_digits_from_the_command_line(tmp_path):
  directory = str(tmp_path / 'hf_vit')
  _hf_directory(directory)
  workdir = tmp_path / 'run'
  overrides = [f'--config.model.overrides.{k}={v}' for k, v in OUR_VIT.items()]
  result = _run_main(['--config=experiments/configs/default.py:runlocal', f'--workdir={workdir}',
                      '--config.data.channels=3', f'--config.init_from.path={directory}',
                      *overrides])
  assert result.returncode == 0, result.stderr[-2000:]
  records = metrics.read_jsonl(str(workdir / metrics.METRICS_FILE))
  # Step 1's loss is that of the zeroed head: uniform logits, cross-entropy ln 10.
  assert records[0]['step'] == 1 and abs(records[0]['train/loss'] - np.log(10)) < 1e-5
  assert records[-1]['step'] == 10 and np.isfinite(records[-1]['train/loss'])
  assert records[-1]['train/loss'] < records[0]['train/loss'] and 'val/accuracy' in records[-1]


def test_checkpoint_that_does_not_fit_exits_2_with_nothing_written(source, tmp_path):
  workdir = tmp_path / 'misfit'
  result = _run_main(['--config=experiments/configs/default.py:runlocal', f'--workdir={workdir}',
                      '--config.data.image_size=16', '--config.model.overrides.patch_size=8',
                      '--config.model.overrides.embed_dim=32', f'--config.init_from.path={source}'])
  assert result.returncode == 2, result.stderr[-2000:]
  assert result.stderr.count('\n') == 1, result.stderr
  assert 'does not fit' in result.stderr and 'mis-shaped' in result.stderr
  assert not workdir.exists()
  result = _run_main(['--config=experiments/configs/default.py:runlocal', f'--workdir={workdir}',
                      f'--config.init_from.path={tmp_path / "absent"}'])
  assert result.returncode == 2 and result.stderr.count('\n') == 1, result.stderr
  assert 'does not exist' in result.stderr and not workdir.exists()
