"""Bad values never run: for every numeric key of every shipped config (listed or completed),
values drawn outside its domain end in exit 2, one line on stderr, no workdir created."""
from __future__ import annotations

import contextlib
import io
import math
import os
import tempfile

from hypothesis import HealthCheck, Phase, given, settings, strategies as st
import pytest

from experiments import config_cli
from experiments import config_domains
from experiments import config_validation
from experiments import main

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIG_DIR = os.path.join(ROOT, 'experiments', 'configs')
HELPERS = {'__init__.py', 'common.py', 'imagenet_common.py', 'cifar10_common.py'}
SHIPPED = sorted(f for f in os.listdir(CONFIG_DIR) if f.endswith('.py') and f not in HELPERS)
SKIPPED_SECTIONS = ('sweep.', 'compare.', 'task_options.')  # not read by experiments.main


def numeric_keys(name: str) -> list[tuple[str, config_domains.Domain]]:
  """(dotted key, domain) of every int/float key of the completed config `name`."""
  config = config_cli.load_file(os.path.join(CONFIG_DIR, name))
  config = config_cli.config_schema.complete(config)
  out = []
  for path, _ in config_cli.config_schema.leaves(config):
    if path.startswith(SKIPPED_SECTIONS):
      continue
    domain = config_validation.domain_of(config, path)
    if domain is not None and domain.kind in ('int', 'float'):
      out.append((path, domain))
  return out


def invalid(domain: config_domains.Domain) -> st.SearchStrategy:
  """Values of the domain's kind outside it (non-finite floats included)."""
  options = []
  whole = domain.kind == 'int'
  if domain.lo is not None:
    below = domain.lo if domain.lo_open else domain.lo - (1 if whole else 1e-6)
    options.append(st.integers(max_value=int(math.floor(below))) if whole else
                   st.floats(max_value=below, allow_nan=False, allow_infinity=False))
  if domain.hi is not None:
    above = domain.hi if domain.hi_open else domain.hi + (1 if whole else 1e-6)
    options.append(st.integers(min_value=int(math.ceil(above))) if whole else
                   st.floats(min_value=above, allow_nan=False, allow_infinity=False))
  if not whole:
    options.append(st.sampled_from([math.nan, math.inf, -math.inf]))
  return st.one_of(options) if options else st.nothing()


def run_main(args: list[str]) -> tuple[object, str]:
  err = io.StringIO()
  with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
    try:
      status = main.main(['main', *args])
    except SystemExit as e:
      status = e.code
  return status, err.getvalue()


@pytest.fixture(autouse=True)
def _in_root(monkeypatch):
  monkeypatch.chdir(ROOT)


@pytest.mark.parametrize('name', SHIPPED)
def test_every_shipped_config_passes_the_checks(name):
  config = config_cli.config_schema.settle(config_cli.load_file(os.path.join(CONFIG_DIR, name)))
  config_validation.check_schema(config)


def test_every_shipped_config_has_numeric_keys_with_domains():
  for name in SHIPPED:
    keys = dict(numeric_keys(name))
    assert 'batch_size' in keys and 'optimizer.learning_rate' in keys, name
    assert any(k.startswith('model.overrides.') for k in keys), name


@pytest.mark.parametrize('name', SHIPPED)
@settings(max_examples=5, deadline=None, derandomize=True,
          phases=(Phase.explicit, Phase.generate),  # a failure names its key; no shrinking
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(data=st.data())
def test_invalid_numeric_value_exits_2_with_one_line(name, data):
  with tempfile.TemporaryDirectory() as tmp:
    workdir = os.path.join(tmp, 'run')
    for path, domain in numeric_keys(name):
      if domain.kind == 'int' and domain.lo is None and domain.hi is None:
        continue  # every integer is valid (nothing to draw)
      value = data.draw(invalid(domain), label=path)
      assert not domain.contains(value)
      status, err = run_main([f'--config={os.path.join(CONFIG_DIR, name)}',
                              f'--workdir={workdir}', f'--config.{path}={value!r}'])
      assert status == 2, (path, value, err)
      assert err.count('\n') == 1 and err.startswith('error: '), (path, value, err)
      assert path.rsplit('.', 1)[-1] in err, (path, value, err)
      assert not os.path.exists(workdir), (path, value)
