"""Test session set-up: 8 fake CPU devices so pmap'd code is testable on CPU.

XLA reads XLA_FLAGS once, when jax initialises its backend, so this must run
before anything imports jax.
"""
import os

_FLAG = '--xla_force_host_platform_device_count=8'
if _FLAG not in os.environ.get('XLA_FLAGS', ''):
  os.environ['XLA_FLAGS'] = (os.environ.get('XLA_FLAGS', '') + ' ' + _FLAG).strip()
os.environ.setdefault('JAX_PLATFORMS', 'cpu')
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
os.environ.setdefault('CUDA_VISIBLE_DEVICES', '')

import jax  # noqa: E402  (after the flag on purpose)
import pytest  # noqa: E402


def pytest_configure(config):
  assert jax.local_device_count() == 8, (
      'tests need 8 fake CPU devices; jax was imported before tests/conftest.py')


@pytest.fixture
def x64():
  """Runs a test with float64 enabled, restoring the previous setting."""
  previous = jax.config.jax_enable_x64
  jax.config.update('jax_enable_x64', True)
  try:
    yield
  finally:
    jax.config.update('jax_enable_x64', previous)


@pytest.fixture(scope='session')
def postgresql_server():
  """A real PostgreSQL server on localhost for the session (tests/postgresql.py).
  One that cannot start is an error, never a skip."""
  from tests import postgresql  # pylint: disable=import-outside-toplevel
  server = postgresql.Server().start()
  yield server
  server.stop()


@pytest.fixture
def postgresql_url(postgresql_server, request):
  """The URL of a fresh, empty database on the session's PostgreSQL server."""
  import hashlib  # pylint: disable=import-outside-toplevel
  name = 't_' + hashlib.sha1(request.node.nodeid.encode()).hexdigest()[:16]
  return postgresql_server.create_database(name)
