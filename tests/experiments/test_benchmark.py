"""The benchmark command: its header names the machine, `--json` holds header and rows.

Speed itself is measured by the benchmark, not asserted here; this checks
that a run reports where its figures come from (CPU model, both libraries'
matmul peaks) in the table and in the JSON file, and that a bad section
name is one line and exit 2.
"""
import json
import os
import subprocess
import sys

from experiments.benchmarks import machine

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _run(*args: str) -> subprocess.CompletedProcess:
  env = dict(os.environ, JAX_PLATFORMS='cpu', PYTHONPATH=ROOT)
  return subprocess.run([sys.executable, '-m', 'experiments.benchmark', *args], cwd=ROOT,
                        env=env, capture_output=True, text=True, timeout=600)


def test_header_and_json_file(tmp_path):
  out_file = tmp_path / 'bench.json'
  proc = _run('--only=optim', '--quick', f'--json={out_file}')
  assert proc.returncode == 0, proc.stderr[-3000:]
  report = json.loads(out_file.read_text())
  header = report['header']
  assert header['cpu_model'] == machine.cpu_model() and header['cores'] == os.cpu_count()
  assert header['jax_matmul_peak_gflops'] > 0 and header['torch_matmul_peak_gflops'] > 0
  assert header['host_runtime']['reason']
  assert report['rows'] and all(r['section'] == 'optim' for r in report['rows'])
  for row in report['rows']:
    assert row['ratio'] == (row['ours'] / row['peer'] if row['higher_is_better']
                            else row['peer'] / row['ours'])
  assert f'CPU: {header["cpu_model"]}' in proc.stdout
  assert 'float32 matmul peak' in proc.stdout and 'torch' in proc.stdout
  assert [json.loads(line[len('BENCH '):]) for line in proc.stdout.splitlines()
          if line.startswith('BENCH ')] == report['rows']


def test_unknown_section_is_one_line_and_exit_2(tmp_path):
  out_file = tmp_path / 'bench.json'
  proc = _run('--only=optim,nosuch', f'--json={out_file}')
  assert proc.returncode == 2
  lines = [line for line in proc.stderr.splitlines() if line.strip()]
  assert len(lines) == 1 and 'nosuch' in lines[0] and 'optim' in lines[0], proc.stderr
  assert not out_file.exists()


def test_unwritable_json_folder_is_one_line_and_exit_2(tmp_path):
  out_file = tmp_path / 'no_such_folder' / 'bench.json'
  proc = _run('--only=optim', f'--json={out_file}')
  assert proc.returncode == 2
  lines = [line for line in proc.stderr.splitlines() if line.strip()]
  assert len(lines) == 1 and 'no_such_folder' in lines[0], proc.stderr
  assert not out_file.parent.exists() and 'BENCH' not in proc.stdout
  proc = _run('--only=optim', f'--json={tmp_path}')
  assert proc.returncode == 2
  lines = [line for line in proc.stderr.splitlines() if line.strip()]
  assert len(lines) == 1 and 'is a directory' in lines[0], proc.stderr
