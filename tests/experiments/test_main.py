"""The command line end to end: bad configs, kill and resume, TFDS and folder data, the default run.

Subprocesses inherit the 8 fake devices from tests/conftest.py's XLA_FLAGS
(except the default-config run, which runs as a user would, on 1 device).
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from experiments import main
from experiments import metrics

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_LOCAL = 'experiments/configs/default.py:runlocal'
MLP = 'experiments/configs/digits_baselines.py:model=mlp3'


def run_main(args, env=None, timeout=600):
  return subprocess.run([sys.executable, '-m', 'experiments.main', *args], cwd=ROOT,
                        capture_output=True, text=True, env=env, timeout=timeout)


def main_inprocess(args, capsys):
  """(exit status, stderr) of main.main(args) in this process."""
  try:
    status = main.main(['main', *args])
  except SystemExit as e:
    status = e.code
  return status, capsys.readouterr().err


def comparable(records):
  return [{k: v for k, v in r.items() if k not in metrics.TIMING_KEYS} for r in records]


# --------------------------------------------------------------------------- bad configs

def _assert_refused(status, err, workdir, expected):
  assert status == 2, err
  assert err.count('\n') == 1 and err.startswith('error: '), err
  assert expected in err, err
  assert not os.path.exists(workdir)


@pytest.mark.parametrize('args,expected', [
    (['--config.model.name=resnet_nope'], "Unknown model name 'resnet_nope'"),
    (['--config.optimizer.name=adamm'], "optimizer.name='adamm'; valid: "),
    (['--config.batch_size=60'], 'batch_size=60 is not divisible by the 8 device(s)'),
    (['--config.model.overrides.patch_size=3'], 'patch_size=3 does not tile'),
    (['--config.data.image_size=9'], 'does not tile img_size=9'),
    (['--config.model.overrides.depth=two'], 'depth'),
    (['--config.loss=hinge', '--config.label_smoothing=0.1'], 'label_smoothing'),
    (['--config.total_steps=0'], 'total_steps=0'),
    (['--config.optimizer.learning_rate=-0.1'],
     'optimizer.learning_rate=-0.1; valid: a finite number > 0'),
    (['--config.optimizer.learning_rate=nan'], 'optimizer.learning_rate=nan'),
    (['--config.optimizer.b1=1.0'], 'optimizer.b1=1.0; valid: a finite number >= 0 and < 1'),
    (['--config.optimizer.eps=0.0'], 'optimizer.eps=0.0; valid: a finite number > 0'),
    (['--config.model.overrides.drop_rate=1.5'], 'model.overrides.drop_rate=1.5'),
    (['--config.label_smoothing=-0.1'], 'label_smoothing=-0.1'),
    (['--config.data.augment=mixup'], "data.augment='mixup'; valid: one of none, flip"),
    (['--config.schedule.warmup_steps=-5'], 'schedule.warmup_steps=-5'),
    (['--config.dtype=float16'], "dtype='float16'; valid: one of float32, bfloat16"),
    (['--config.model.overrides.batch_norm=True'],
     "model 'vit' has no field 'batch_norm'; valid: depth, drop_path_rate"),
    (['--config.model.overrides.dtype=bfloat16'], 'set from the top-level key dtype'),
    (['--config.optimizer.momentum=0.9'], "optimizer 'adamw' has no hyper-parameter 'momentum'"),
    (['--config.model.name=mlp', '--config.model.overrides.patch_size=4'],
     "model 'mlp' has no field 'patch_size'"),
])
def test_bad_config_exits_2_with_one_line(tmp_path, capsys, args, expected):
  workdir = tmp_path / 'run'
  status, err = main_inprocess([f'--config={DEFAULT_LOCAL}', f'--workdir={workdir}', *args],
                               capsys)
  _assert_refused(status, err, workdir, expected)


@pytest.mark.parametrize('args,expected', [
    (['--config.batch_sz=3'], 'batch_sz'),
    (['--config.data.name=no_such_dataset_xyz'], 'no_such_dataset_xyz'),
])
def test_bad_config_subprocess_no_traceback(tmp_path, args, expected):
  workdir = tmp_path / 'run'
  out = run_main([f'--config={DEFAULT_LOCAL}', f'--workdir={workdir}', *args])
  assert out.returncode == 2, out.stderr
  lines = [l for l in out.stderr.splitlines() if l.strip()]
  assert len(lines) == 1 and lines[0].startswith('error: '), out.stderr
  assert 'Traceback' not in out.stderr and expected in lines[0]
  assert not workdir.exists()


BAD_CONFIG_FILES = {
    'returns_a_dict.py': 'def get_config(arg=None):\n  return {"seed": 0}\n',
    'syntax_error.py': 'def get_config(arg=None)\n  return None\n',
    'raises.py': 'def get_config(arg=None):\n  raise RuntimeError("no such dataset")\n',
    'raises_at_import.py': 'import no_such_module_xyz\n',
    'no_get_config.py': 'CONFIG = 1\n',
}
BAD_CONFIG_MESSAGES = {
    'returns_a_dict.py': 'get_config returned a dict, not an ml_collections.ConfigDict',
    'syntax_error.py': 'syntax error in',
    'raises.py': 'raised RuntimeError: no such dataset',
    'raises_at_import.py': "cannot be imported: ModuleNotFoundError: No module named "
                           "'no_such_module_xyz'",
    'no_get_config.py': 'defines no get_config',
}


def test_missing_config_file_exits_2_without_traceback(tmp_path):
  workdir = tmp_path / 'run'
  out = run_main(['--config=experiments/configs/no_such_config.py', f'--workdir={workdir}'])
  assert out.returncode == 2 and 'Traceback' not in out.stderr, out.stderr
  _assert_refused(out.returncode, out.stderr, workdir,
                  "'experiments/configs/no_such_config.py' does not exist")


@pytest.mark.parametrize('name', sorted(BAD_CONFIG_FILES))
def test_config_file_that_cannot_load_exits_2(tmp_path, capsys, name):
  path = tmp_path / name
  path.write_text(BAD_CONFIG_FILES[name])
  workdir = tmp_path / 'run'
  status, err = main_inprocess([f'--config={path}', f'--workdir={workdir}'], capsys)
  _assert_refused(status, err, workdir, BAD_CONFIG_MESSAGES[name])


def test_config_arg_error_exits_2(tmp_path, capsys):
  workdir = tmp_path / 'run'
  status, err = main_inprocess(['--config=experiments/configs/digits_baselines.py:model=mlp9',
                                f'--workdir={workdir}'], capsys)
  _assert_refused(status, err, workdir, "model='mlp9'; valid: softmax, svm, mlp2, mlp3, convnet")


def test_workdir_that_is_a_file_exits_2(tmp_path, capsys):
  workdir = tmp_path / 'run'
  workdir.write_text('notes')
  status, err = main_inprocess([f'--config={DEFAULT_LOCAL}', f'--workdir={workdir}'], capsys)
  assert status == 2 and err.count('\n') == 1, err
  assert 'is a file, not a directory' in err
  assert workdir.read_text() == 'notes'
  inside = workdir / 'sub'
  status, err = main_inprocess([f'--config={DEFAULT_LOCAL}', f'--workdir={inside}'], capsys)
  assert status == 2 and 'is a file, so the directory cannot be created' in err, err


@pytest.mark.skipif(os.geteuid() == 0, reason='root may write anywhere')
def test_workdir_that_cannot_be_written_exits_2(tmp_path, capsys):
  parent = tmp_path / 'readonly'
  parent.mkdir()
  parent.chmod(0o500)
  try:
    status, err = main_inprocess([f'--config={DEFAULT_LOCAL}', f'--workdir={parent / "run"}'],
                                 capsys)
  finally:
    parent.chmod(0o700)
  assert status == 2 and 'is not writable' in err and err.count('\n') == 1, err
  assert os.listdir(parent) == []


def test_workdir_with_a_different_config_exits_2(tmp_path, capsys):
  workdir = tmp_path / 'run'
  workdir.mkdir()
  (workdir / 'config.json').write_text('{"seed": 1}')
  status, err = main_inprocess([f'--config={DEFAULT_LOCAL}', f'--workdir={workdir}'], capsys)
  assert status == 2 and 'holds a different config' in err and err.count('\n') == 1
  assert os.listdir(workdir) == ['config.json']


# --------------------------------------------------------------------------- resume

def test_sigkill_then_rerun_resumes_bit_identical(tmp_path, capsys):
  """Kill -9 a run after its first checkpoint; the rerun ends with the uninterrupted metrics."""
  args = [f'--config={MLP}', '--config.total_steps=400', '--config.total_epochs=0',
          '--config.log_every=10', '--config.eval_every=100', '--config.checkpoint_every=50',
          '--config.model.overrides.width=64']
  killed = tmp_path / 'killed'
  proc = subprocess.Popen([sys.executable, '-m', 'experiments.main', *args,
                           f'--workdir={killed}'], cwd=ROOT, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE)
  jsonl = killed / metrics.METRICS_FILE
  deadline = time.time() + 300
  while time.time() < deadline and proc.poll() is None:
    steps = [r['step'] for r in metrics.read_jsonl(str(jsonl))]
    # Saves are asynchronous: kill once step 50's checkpoint has been committed.
    if steps and steps[-1] >= 60 and (killed / 'checkpoints' / '50').is_dir():
      break
    time.sleep(0.01)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  assert proc.returncode == -signal.SIGKILL, proc.stderr.read()
  done = metrics.read_jsonl(str(jsonl))
  assert 60 <= done[-1]['step'] < 400, 'the run ended before it could be killed'
  assert sorted(s for s in os.listdir(killed / 'checkpoints') if s.isdigit())[0] == '50'

  out = run_main([*args, f'--workdir={killed}'])
  assert out.returncode == 0, out.stderr
  assert 'Resuming from' in out.stdout

  status, _ = main_inprocess([*args, f'--workdir={tmp_path / "straight"}'], capsys)
  assert status == 0
  resumed = metrics.read_jsonl(str(jsonl))
  straight = metrics.read_jsonl(str(tmp_path / 'straight' / metrics.METRICS_FILE))
  assert [r['step'] for r in resumed] == list(range(10, 401, 10))
  assert comparable(resumed) == comparable(straight)  # exact, bit for bit


# --------------------------------------------------------------------------- data sources

def test_tfds_mock_cifar10_end_to_end(tmp_path, capsys):
  """cifar10 through TFDS (mock_data, nothing downloads), then the TensorBoard events read back."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  workdir = tmp_path / 'cifar'
  with tfds.testing.mock_data(num_examples=40, policy=tfds.testing.MockPolicy.USE_CODE):
    status, err = main_inprocess([
        '--config=experiments/configs/vit_cifar10.py:runlocal', f'--workdir={workdir}',
        '--config.eval_batch_size=16'], capsys)
  assert status == 0, err
  records = metrics.read_jsonl(str(workdir / metrics.METRICS_FILE))
  last = records[-1]
  assert last['val/count'] == 40 and 0.0 <= last['val/accuracy'] <= 1.0
  assert np.isfinite(last['train/loss'])
  (events,) = [f for f in os.listdir(workdir) if f.startswith('events.out.tfevents')]
  seen = {}
  for event in tf.compat.v1.train.summary_iterator(str(workdir / events)):
    for value in event.summary.value:
      seen[(event.step, value.tag)] = value.simple_value
  assert seen[(last['step'], 'val/accuracy')] == pytest.approx(last['val/accuracy'], rel=1e-6)
  assert seen[(1, 'train/loss')] == pytest.approx(records[0]['train/loss'], rel=1e-6)
  assert (workdir / 'curves.png').stat().st_size > 1000


def test_folder_source_end_to_end(tmp_path, capsys):
  from PIL import Image  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  root = tmp_path / 'images'
  for split, n in (('train', 12), ('val', 5)):
    for cls, level in (('cat', 40), ('dog', 200)):
      d = root / split / cls
      d.mkdir(parents=True)
      for i in range(n):
        pixels = np.clip(level + rng.normal(0, 20, (10, 10, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(d / f'{i}.png')
  workdir = tmp_path / 'run'
  status, err = main_inprocess([
      f'--config={MLP},runlocal', f'--workdir={workdir}', f'--config.data.name=folder:{root}',
      '--config.batch_size=8', '--config.eval_batch_size=8', '--config.total_steps=20',
      '--config.eval_every=20', '--config.optimizer.learning_rate=0.01'], capsys)
  assert status == 0, err
  last = metrics.read_jsonl(str(workdir / metrics.METRICS_FILE))[-1]
  assert last['val/count'] == 10
  assert last['val/accuracy'] == 1.0  # dark cats, bright dogs


# --------------------------------------------------------------------------- default

@pytest.mark.slow
def test_default_config_reaches_97_percent(tmp_path):
  """`python -m experiments.main` exactly as the README runs it (one CPU device)."""
  env = dict(os.environ)
  env['XLA_FLAGS'] = env.get('XLA_FLAGS', '').replace(
      '--xla_force_host_platform_device_count=8', '')
  start = time.time()
  out = run_main([f'--workdir={tmp_path / "default"}'], env=env, timeout=900)
  elapsed = time.time() - start
  assert out.returncode == 0, out.stderr
  last = metrics.read_jsonl(str(tmp_path / 'default' / metrics.METRICS_FILE))[-1]
  print(f'default config: val/accuracy={last["val/accuracy"]:.4f} in {elapsed:.1f}s')
  assert last['val/accuracy'] >= 0.97
