"""Durations given in steps or in epochs (exactly one of them), converted to steps."""
from __future__ import annotations

import math
from typing import Optional

import ml_collections


def steps(config: ml_collections.ConfigDict, num_train: int, global_batch: int,
          steps_key: str, epochs_key: str, container=None) -> Optional[int]:
  """A duration given in steps or epochs (exactly one of them), in steps: ⌈epochs·n/B⌉."""
  container = container if container is not None else config
  n_steps, epochs = container.get(steps_key) or None, container.get(epochs_key) or None
  if n_steps is not None and epochs is not None:
    raise ValueError(f'{steps_key}={n_steps!r} and {epochs_key}={epochs!r} are both set; '
                     f'give the duration in one of them (the other None or 0)')
  if epochs is not None:
    return int(math.ceil(epochs * num_train / global_batch))
  return None if n_steps is None else int(n_steps)


def total_steps_of(config: ml_collections.ConfigDict, num_train: int) -> int:
  """config.total_steps, or config.total_epochs over the training split."""
  global_batch = num_train if config.full_batch else config.batch_size
  total = steps(config, num_train, global_batch, 'total_steps', 'total_epochs')
  if total is None or total < 1:
    raise ValueError(f'total_steps={config.get("total_steps")!r}, total_epochs='
                     f'{config.get("total_epochs")!r}; set one of them to a positive number')
  if config.get('total_steps') and config.total_steps < 0:
    raise ValueError(f'total_steps={config.total_steps!r}; must be positive')
  return total
