"""The one path layer of a workdir: `etils.epath`, so `--workdir=gs://bucket/run` works.

Every file a run writes or reads in its workdir — config.json, metrics.jsonl,
the TensorBoard events, curves.png, best.json, the checkpoints (orbax takes
`epath.Path`) and their sidecars — goes through `path(workdir) / name`. A
path without a URI scheme is a local path (made absolute, as orbax needs);
`gs://`, `s3://` and `az://` are object stores, reached through epath's
backend (`tf.io.gfile` when TensorFlow is installed, else fsspec) with the
credentials of the environment.

What an object store cannot do, and what happens instead:

- **Atomic replace.** Locally a JSON file is written to `<name>.tmp` and
  renamed over `<name>`, so a reader never sees half a file. An object store
  publishes an object only when its upload completes, so the object is
  written in place (`write_text_atomically`).
- **Appends.** `metrics.jsonl` and the event file are opened for append and
  flushed after each record; gfile implements that on GCS by re-uploading
  the object, so each flush costs the file's size.
- **The workdir lock** (`fcntl.flock`, experiments/workdir_lock.py) exists on
  local filesystems only: on an object store it is skipped, and two live runs
  on one remote workdir are not detected.
- **Moving a damaged checkpoint aside** is a rename, which an object store
  performs object by object (not atomically); a run killed meanwhile leaves
  the step partly in both places, and the next run moves the rest.
"""
from __future__ import annotations

import os
import re
from typing import Union

from etils import epath

PathLike = Union[str, os.PathLike]
_SCHEME = re.compile(r'^[a-zA-Z][a-zA-Z0-9+.-]*://')


def is_local(path: PathLike) -> bool:
  """True for a path on a local filesystem (no `scheme://` prefix)."""
  return not _SCHEME.match(os.fspath(path))


def path(p: PathLike) -> epath.Path:
  """`p` as an `epath.Path`: absolute when local, the URI itself when on an object store."""
  return epath.Path(os.path.abspath(p) if is_local(p) else os.fspath(p))


def write_text_atomically(target: PathLike, text: str) -> None:
  """Writes `text` to `target` so a reader sees the old content or the new, never a part."""
  target = path(target)
  if not is_local(target):
    target.write_text(text)  # an object appears only once its upload is complete
    return
  tmp = target.parent / (target.name + '.tmp')
  tmp.write_text(text)
  tmp.replace(target)


class _TensorboardFile:
  """tensorboardX's record-writer factory for an object-store path, through epath."""

  def open(self, name: str):
    return epath.Path(name).open('wb')

  def directory_check(self, name: str) -> None:
    del name  # object stores have no directories to create


def register_tensorboard_schemes() -> None:
  """Makes tensorboardX write `gs://`/`s3://`/`az://` event files through epath."""
  from tensorboardX import record_writer  # pylint: disable=g-import-not-at-top  (imports torch)
  for scheme in ('gs', 's3', 'az'):
    record_writer.register_writer_factory(scheme, _TensorboardFile())
