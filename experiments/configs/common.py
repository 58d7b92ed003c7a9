"""Shared pieces of the configs: the full schema with neutral defaults, and arg parsing.

`base_config()` holds every key the trainer reads (documented in
`default.py`); a config file starts from it and sets what its experiment
needs, so `--config.<key>=...` can override any knob of any config. Optional
keys are absent here and set by the configs that use them: `task_options`
(segmentation configs) and `optimizer.lr_mult` (both documented in default.py).
`init_from` (start from pretrained weights) is documented in
`experiments/init_from.py`.
"""
from __future__ import annotations

from typing import Any, Optional

import ml_collections

from experiments import data
from experiments import early_stopping
from experiments import mixing
from experiments import weight_averaging


def parse_arg(arg: Optional[str], **defaults: Any) -> ml_collections.ConfigDict:
  """Parses 'key=value,flag,...' into a ConfigDict typed by `defaults` (big_vision style).

  A bare `flag` sets a bool default to True. Values are converted to the type
  of their default (bool: 1/true/yes); unknown keys raise ValueError.

    parse_arg('variant=S/16,runlocal', variant='B/16', runlocal=False)
  """
  out = ml_collections.ConfigDict(defaults)
  for part in filter(None, (arg or '').split(',')):
    key, eq, value = part.partition('=')
    key = key.strip()
    if key not in defaults:
      raise ValueError(f'config arg {key!r} is unknown; valid: {", ".join(sorted(defaults))}')
    default = defaults[key]
    if not eq:
      if not isinstance(default, bool):
        raise ValueError(f'config arg {key!r} needs a value ({key}=...)')
      out[key] = True
    elif isinstance(default, bool):
      out[key] = value.strip().lower() in ('1', 'true', 'yes', 'y')
    elif default is None:
      out[key] = value
    else:
      out[key] = type(default)(value)
  return out


def base_config() -> ml_collections.ConfigDict:
  """Every key of the schema (docs/config.md), with neutral defaults."""
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.task = 'classification'
  c.model = ml_collections.ConfigDict()
  c.model.name = 'linear_classifier'
  c.model.overrides = ml_collections.ConfigDict()
  c.data = data.default_config()
  c.batch_size = 128
  c.eval_batch_size = ml_collections.FieldReference(None, field_type=int)
  c.total_steps = ml_collections.FieldReference(None, field_type=int)
  c.total_epochs = ml_collections.FieldReference(None, field_type=float)
  c.optimizer = ml_collections.ConfigDict()
  c.optimizer.name = 'sgd'
  c.optimizer.learning_rate = 0.1
  c.schedule = ml_collections.ConfigDict()
  c.schedule.name = 'constant'
  c.schedule.warmup_steps = ml_collections.FieldReference(None, field_type=int)
  c.schedule.warmup_epochs = ml_collections.FieldReference(None, field_type=float)
  c.grad_clip_norm = ml_collections.FieldReference(None, field_type=float)
  c.loss = 'softmax_xent'
  c.label_smoothing = 0.0
  c.reg = ml_collections.ConfigDict()
  c.reg.kind = 'none'
  c.reg.strength = 0.0
  c.reg.mask = 'kernels'
  c.dtype = 'float32'
  c.accum_steps = 1
  c.full_batch = False
  c.sync_batch_norm = True
  c.log_every = 50
  c.eval_every = 500
  c.checkpoint_every = 500
  c.keep_checkpoints = 3
  c.async_checkpoints = True
  # Batches a background thread places on the devices ahead; None: 0 on CPU, else 2.
  c.prefetch = ml_collections.FieldReference(None, field_type=int)
  c.distributed = False
  c.parallelism = 'pmap'  # 'pmap' | 'jit' | 'fsdp' (docs/experiments.md, "Parallelism")
  c.mixup = mixing.default_config()  # Mixup/CutMix on device; off (both alphas 0)
  c.ema = weight_averaging.ema_config()  # EMA of the weights, evaluated as val_ema/*
  c.polyak = weight_averaging.polyak_config()  # uniform iterate average, val_polyak/*
  c.early_stopping = early_stopping.default_config()  # off (metric None)
  c.init_from = _init_from_config()
  return c


def _init_from_config() -> ml_collections.ConfigDict:
  """config.init_from: path ('' = from scratch), dont_load (regexes), head ('auto'),
  weights ('params' | 'ema' | 'polyak')."""
  from experiments import init_from  # pylint: disable=g-import-not-at-top  (imports vision)
  return init_from.default_config()


def runlocal(c: ml_collections.ConfigDict, steps: int = 4, batch_size: int = 16
             ) -> ml_collections.ConfigDict:
  """Shrinks a config to a smoke run: a few steps, small batches, every cadence on."""
  c.total_epochs = None
  c.total_steps = steps
  c.batch_size = batch_size
  c.eval_batch_size = batch_size
  c.accum_steps = 1
  c.log_every = 1
  c.eval_every = steps
  c.checkpoint_every = steps
  c.schedule.warmup_epochs = None
  c.schedule.warmup_steps = 1 if steps > 1 else None
  c.data.shuffle_buffer = 64
  return c
