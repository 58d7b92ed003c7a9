"""The Optuna RDB storage of a sweep: SQLite for one host, a server for many.

    sqlite:///WORKDIR/sweep.db                     one host (the default)
    postgresql://USER:PASSWORD@HOST:PORT/DATABASE  workers on any host
    mysql+pymysql://USER:PASSWORD@HOST/DATABASE

`postgresql://` is driven by psycopg 3 (`pip install 'psycopg[binary]'`,
the `postgresql` extra of setup.cfg) whatever SQLAlchemy's default driver for
it; `postgresql+DRIVER://` picks another.

With `heartbeat_s`, every running trial's worker records a heartbeat in the
database (server time) every `heartbeat_s` seconds, and a RUNNING trial whose
last beat is older than `grace_s` is failed by Optuna's
`optuna.storages.fail_stale_trials`, which any worker may call: that is how a
worker on another host learns that a worker died mid-trial.
"""
from __future__ import annotations

import random
import time
import warnings
from typing import Any, Optional

import optuna
import sqlalchemy

from experiments import checks

_SCHEMA_ATTEMPTS = 5

# The heartbeat is marked experimental in Optuna; its API is what this module uses.
warnings.filterwarnings('ignore', message=r'.*(heartbeat_interval|fail_stale_trials)',
                        category=optuna.exceptions.ExperimentalWarning)


def is_local(url: str) -> bool:
  """Whether `url` is a SQLite file: every worker on it runs on this host."""
  return url.startswith('sqlite')


def open_storage(url: str, *, heartbeat_s: Optional[int] = None,
                 grace_s: Optional[int] = None) -> optuna.storages.RDBStorage:
  """An Optuna RDB storage; ValueError (one line) if it cannot be opened."""
  if is_local(url):
    # SQLite locks the whole file per write: wait for other workers' writes.
    kwargs: dict[str, Any] = {'connect_args': {'timeout': 120}}
  else:
    kwargs = {'pool_pre_ping': True}  # a server may drop idle connections
  driver_url = 'postgresql+psycopg://' + url[len('postgresql://'):] \
      if url.startswith('postgresql://') else url
  try:
    for attempt in range(_SCHEMA_ATTEMPTS):
      try:
        storage = optuna.storages.RDBStorage(
            driver_url, engine_kwargs=kwargs, heartbeat_interval=heartbeat_s,
            grace_period=grace_s)
        storage.get_all_studies()  # touches the database
        break
      except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError):
        # Workers starting together on a new database race to create Optuna's
        # tables; the loser's transaction is rolled back and it finds them next time.
        if attempt == _SCHEMA_ATTEMPTS - 1:
          raise
        time.sleep(0.2 + random.random())
  except Exception as e:  # pylint: disable=broad-except
    msg = checks.first_line(e)
    if isinstance(e, ImportError):  # SQLAlchemy's dialect needs a driver module
      msg += "; install its driver, e.g. pip install 'psycopg[binary]' for postgresql://"
    raise ValueError(f'--storage={url!r}: cannot open the Optuna storage ({msg})') from None
  return storage
