"""Config checks that run before anything is written, and the workdir's config.json.

`check_schema(config)` rejects missing keys and out-of-domain values with a
ValueError naming the key, the value and what is valid; `train.build` then
checks the config against the data, model and optimizer. `check_workdir`
refuses to resume a workdir whose config.json differs from the config given.
"""
from __future__ import annotations

import json
import os
from typing import Any

import ml_collections

REQUIRED = ('seed', 'task', 'model', 'data', 'batch_size', 'optimizer', 'schedule', 'loss',
            'label_smoothing', 'reg', 'dtype', 'accum_steps', 'log_every', 'eval_every',
            'checkpoint_every', 'keep_checkpoints', 'full_batch', 'grad_clip_norm')
DTYPES = ('float32', 'bfloat16')
CONFIG_FILE = 'config.json'


def _positive_int(config, key: str, allow_none: bool = False) -> None:
  value = config.get(key)
  if value is None and allow_none:
    return
  if isinstance(value, bool) or not isinstance(value, int) or value < 1:
    raise ValueError(f'{key}={value!r}; must be a positive integer'
                     + (' or None' if allow_none else ''))


def check_schema(config: ml_collections.ConfigDict) -> None:
  """Raises ValueError when a key is missing or a value is outside its domain."""
  missing = [k for k in REQUIRED if k not in config]
  if missing:
    raise ValueError(f'config is missing {", ".join(missing)} (see experiments/configs/'
                     'default.py for the schema)')
  if not isinstance(config.seed, int):
    raise ValueError(f'seed={config.seed!r}; must be an integer')
  if not config.model.get('name'):
    raise ValueError('model.name is not set; valid: a name from vision.list_models()')
  if config.dtype not in DTYPES:
    raise ValueError(f'dtype={config.dtype!r}; valid: {", ".join(DTYPES)}')
  _positive_int(config, 'batch_size')
  _positive_int(config, 'accum_steps')
  _positive_int(config, 'keep_checkpoints')
  for key in ('log_every', 'eval_every', 'checkpoint_every'):
    value = config.get(key)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or
                              value < 0):
      raise ValueError(f'{key}={value!r}; must be a non-negative integer (0: only at the end)')
  if not config.optimizer.get('name'):
    raise ValueError('optimizer.name is not set')
  if config.grad_clip_norm is not None and config.grad_clip_norm <= 0:
    raise ValueError(f'grad_clip_norm={config.grad_clip_norm!r}; must be > 0 or None')
  if config.full_batch and config.data.augment != 'none':
    raise ValueError(f'full_batch=True with data.augment={config.data.augment!r}; full-batch '
                     "training is deterministic, use data.augment='none'")


def canonical(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """The config as plain JSON data (what config.json holds)."""
  return json.loads(config.to_json_best_effort(sort_keys=True))


def check_workdir(workdir: str, config: ml_collections.ConfigDict) -> bool:
  """True if `workdir` holds a run of `config` (to resume); False if new or empty.

  Raises:
    ValueError: the workdir holds a different config (or is not a workdir).
  """
  path = os.path.join(workdir, CONFIG_FILE)
  if not os.path.exists(path):
    if os.path.isdir(workdir) and os.listdir(workdir):
      raise ValueError(f'workdir {workdir!r} exists, is not empty and has no {CONFIG_FILE}; '
                       'choose a new or empty directory')
    return False
  with open(path) as f:
    saved = json.load(f)
  current = canonical(config)
  if saved != current:
    diffs = _diff(saved, current)
    shown = '; '.join(diffs[:3]) + (f' (+{len(diffs) - 3} more)' if len(diffs) > 3 else '')
    raise ValueError(f'workdir {workdir!r} holds a different config ({shown}); use a new '
                     'workdir or the same config to resume')
  return True


def write_config(workdir: str, config: ml_collections.ConfigDict) -> None:
  """Writes config.json atomically."""
  path = os.path.join(workdir, CONFIG_FILE)
  with open(path + '.tmp', 'w') as f:
    json.dump(canonical(config), f, indent=2, sort_keys=True)
  os.replace(path + '.tmp', path)


def _diff(a: Any, b: Any, prefix: str = '') -> list[str]:
  if isinstance(a, dict) and isinstance(b, dict):
    out = []
    for k in sorted(set(a) | set(b)):
      key = f'{prefix}.{k}' if prefix else k
      if k not in a:
        out.append(f'{key} new')
      elif k not in b:
        out.append(f'{key} missing')
      else:
        out.extend(_diff(a[k], b[k], key))
    return out
  return [] if a == b else [f'{prefix}: {a!r} -> {b!r}']
