"""Config checks that run before anything is written, and the workdir's config.json.

`check_schema(config)` rejects missing keys, unknown model fields, optimizer
hyper-parameters and schedule keywords, and out-of-domain values
(experiments/config_domains.py) with a ValueError naming the key, the value
and what is valid; `train.build` then checks the config against the data,
model and optimizer. `check_workdir_usable` refuses a workdir that is a file
or cannot be written; `check_workdir` refuses to resume a workdir whose
config.json differs from the config given (except in `RESUMABLE_KEYS`).
"""
from __future__ import annotations

import json
import os
from typing import Any, Optional

import ml_collections

from experiments import config_domains as domains
from experiments import config_schema
from experiments import workdir_paths

REQUIRED = ('seed', 'task', 'model', 'data', 'batch_size', 'optimizer', 'schedule', 'loss',
            'label_smoothing', 'reg', 'dtype', 'accum_steps', 'log_every', 'eval_every',
            'checkpoint_every', 'keep_checkpoints', 'full_batch', 'grad_clip_norm')
CONFIG_FILE = 'config.json'
# Keys a run may resume with a different value of: how it runs, not what it computes
# (checkpoints do not depend on the parallelism).
RESUMABLE_KEYS = ('parallelism',)


def _unknown(section: str, owner: str, keys: Any, valid: Any) -> None:
  unknown = sorted(set(keys) - set(valid))
  if unknown:
    raise ValueError(f'{section}.{unknown[0]}: {owner} has no {unknown[0]!r}; valid: '
                     f'{", ".join(sorted(valid))}')


def knob_domains(config: ml_collections.ConfigDict) -> dict[str, domains.Domain]:
  """The domain of every key of model.overrides, optimizer and schedule that `config`
  may hold (its model's fields, its optimizer's and schedule's keywords)."""
  out = {}
  for name, knob in config_schema.model_knobs(config.model.name).items():
    out[f'model.overrides.{name}'] = domains.knob_domain(name, knob.type, knob.default)
  for name, knob in config_schema.optimizer_knobs(config.optimizer.name).items():
    out[f'optimizer.{name}'] = (
        domains.linesearch_domain() if name == 'linesearch' else
        domains.knob_domain(name, knob.type, knob.default,
                            by_type=name not in config_schema.RESERVED_OPTIMIZER_KEYS))
  for name, knob in config_schema.schedule_knobs(config.schedule.name).items():
    out[f'schedule.{name}'] = domains.knob_domain(name, knob.type, knob.default)
  return {k: v for k, v in out.items() if v is not None}


def domain_of(config: ml_collections.ConfigDict, path: str) -> Optional[domains.Domain]:
  """The Domain of the dotted key `path` of `config` (None: not checked here)."""
  return domains.fixed_domain(path) or knob_domains(config).get(path)


def check_schema(config: ml_collections.ConfigDict) -> None:
  """Raises ValueError (one line) when a key is missing, unknown or outside its domain."""
  missing = [k for k in REQUIRED if k not in config]
  if missing:
    raise ValueError(f'config is missing {", ".join(missing)} (see docs/config.md for the '
                     'schema)')
  for path in ('model.name', 'optimizer.name', 'schedule.name'):
    section, key = path.split('.')
    if not isinstance(config[section], ml_collections.ConfigDict) or not isinstance(
        config[section].get(key), str):
      raise ValueError(f'{path} is not set; see experiments/configs/default.py')
  model, opt, sched = config.model.name, config.optimizer.name, config.schedule.name
  overrides = config.model.get('overrides') or ml_collections.ConfigDict()
  for key, top in config_schema.DERIVED_MODEL_FIELDS.items():
    if overrides.get(key) is not None:
      raise ValueError(f'model.overrides.{key}={overrides[key]!r}: {key} is set from the '
                       f'top-level key {top}; use {top} instead')
  _unknown('model.overrides', f'model {model!r}', overrides.keys(),
           config_schema.model_fields(model))
  _unknown('optimizer', f'optimizer {opt!r}', config.optimizer.keys(),
           ['name', 'learning_rate', *config_schema.optimizer_knobs(opt)])
  _unknown('schedule', f'schedule {sched!r}', config.schedule.keys(),
           [*config_schema.SCHEDULE_COMMON_KEYS, *config_schema.schedule_knobs(sched)])
  knobs = knob_domains(config)
  for path, value in config_schema.leaves(config):
    if path.startswith(('sweep.', 'compare.', 'task_options.')):
      continue  # read by experiments.sweep / experiments.compare / the task
    domain = domains.fixed_domain(path) or knobs.get(path)
    if path == 'optimizer.learning_rate' and value is None:
      if not config_schema.optimizer_takes_no_rate(opt):
        raise ValueError(f'optimizer.learning_rate=None; optimizer {opt!r} needs a rate: '
                         f'{domain.text}')
      continue
    if domain is not None:
      domains.check(path, value, domain)
  if config.full_batch and config.data.augment != 'none':
    raise ValueError(f'full_batch=True with data.augment={config.data.augment!r}; full-batch '
                     "training is deterministic, use data.augment='none'")
  if config.get('total_steps') and config.get('total_epochs'):
    raise ValueError(f'total_steps={config.total_steps!r} and total_epochs='
                     f'{config.total_epochs!r} are both set; give one (the other None or 0)')
  if config.get('total_steps') == 0 and not config.get('total_epochs'):
    if not (config.get('init_from') and config.init_from.get('path')):
      raise ValueError('total_steps=0 is an evaluation-only run and needs init_from.path (the '
                       'weights to evaluate); set total_steps > 0 to train')
  elif not config.get('total_steps') and not config.get('total_epochs'):
    raise ValueError(f'total_steps={config.get("total_steps")!r}, total_epochs='
                     f'{config.get("total_epochs")!r}; set one of them to a positive number')
  if config.schedule.get('warmup_steps') and config.schedule.get('warmup_epochs'):
    raise ValueError(f'schedule.warmup_steps={config.schedule.warmup_steps!r} and '
                     f'schedule.warmup_epochs={config.schedule.warmup_epochs!r} are both set; '
                     'give one (the other None or 0)')


def check_workdir_usable(workdir: str) -> None:
  """ValueError when `workdir` cannot hold a run: a file, or a place that cannot be written."""
  if not workdir:
    raise ValueError("--workdir=''; valid: a directory path")
  if not workdir_paths.is_local(workdir):
    remote = workdir_paths.path(workdir)
    if remote.exists() and not remote.is_dir():
      raise ValueError(f'--workdir={workdir!r} is an object, not a directory; choose a new or '
                       'empty prefix')
    return  # writability shows at the first write (the store's permissions)
  if os.path.exists(workdir) and not os.path.isdir(workdir):
    raise ValueError(f'--workdir={workdir!r} is a file, not a directory; choose a new or '
                     'empty directory')
  existing = os.path.abspath(workdir)
  while not os.path.exists(existing):
    existing = os.path.dirname(existing)
  if not os.path.isdir(existing):
    raise ValueError(f'--workdir={workdir!r}: {existing!r} is a file, so the directory cannot '
                     'be created; choose another path')
  if not os.access(existing, os.W_OK | os.X_OK):
    what = 'the workdir' if existing == os.path.abspath(workdir) else f'{existing!r}'
    raise ValueError(f'--workdir={workdir!r}: {what} is not writable; choose a writable '
                     'directory')


def canonical(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """The config as plain JSON data (what config.json holds)."""
  return json.loads(config.to_json_best_effort(sort_keys=True))


def check_workdir(workdir: str, config: ml_collections.ConfigDict) -> bool:
  """True if `workdir` holds a run of `config` (to resume); False if new or empty.

  Raises:
    ValueError: the workdir holds a different config (or is not a workdir).
  """
  directory = workdir_paths.path(workdir)
  path = directory / CONFIG_FILE
  if not path.exists():
    if directory.is_dir() and any(True for _ in directory.iterdir()):
      raise ValueError(f'workdir {workdir!r} exists, is not empty and has no {CONFIG_FILE}; '
                       'choose a new or empty directory')
    return False
  saved = json.loads(path.read_text())
  current = canonical(config)
  for key in RESUMABLE_KEYS:  # compared without them (also when an older config.json lacks one)
    saved.pop(key, None)
    current.pop(key, None)
  if saved != current:
    diffs = _diff(saved, current)
    shown = '; '.join(diffs[:3]) + (f' (+{len(diffs) - 3} more)' if len(diffs) > 3 else '')
    raise ValueError(f'workdir {workdir!r} holds a different config ({shown}); use a new '
                     'workdir or the same config to resume')
  return True


def write_config(workdir: workdir_paths.PathLike, config: ml_collections.ConfigDict) -> None:
  """Writes config.json atomically."""
  workdir_paths.write_text_atomically(workdir_paths.path(workdir) / CONFIG_FILE,
                                      json.dumps(canonical(config), indent=2, sort_keys=True))


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
