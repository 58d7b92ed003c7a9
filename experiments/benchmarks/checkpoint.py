"""Benchmark section `checkpoint`: the step-time cost of checkpointing, asynchronous vs synchronous.

    python -m experiments.benchmark --only checkpoint [--quick]

The trainer's pmap'd `train_step` on one device-resident batch (the `train`
section's bare step), run for `steps` steps three ways: without checkpoints,
and saving the train state every `every` steps with
`experiments.checkpointing.Checkpointer` synchronous (`async_save=False`:
the step waits until orbax has written the step and its checksums) or
asynchronous (`config.async_checkpoints`, the default: orbax writes, and a
worker hashes, while the next steps run). Each save is what the loop does at
a checkpoint step: `unreplicate` the state to the host, then `save`. The
timed window ends after `Checkpointer.wait()` (the last save on disk), so an
asynchronous save that has not finished is not hidden.

Per-step time t = window / steps, median over interleaved repeats (none,
sync, async, none, ...), each repeat in a fresh workdir under the system
temporary directory. Overhead o = t_save − t_none (ms per step, i.e. the
save cost amortised over `every` steps). Rows:

- `async vs sync`: ours o_async, peer o_sync, ratio = o_sync / o_async
  (how many times less the step pays for a save when it is asynchronous);
- `async/sync save vs none`: t_none / t_save, the share of the step rate
  kept with checkpoints on.

Model: ViT-S/16 (22 M parameters) with AdamW, so the state is parameters +
two moments ≈ 250 MiB of float32, on 32×32×3 images (4 patches) so the step
is short next to a save; `--quick`: ViT-Ti/16 (≈ 63 MiB), fewer steps. The
row's `extra` holds every step time, both overheads and the state size.
"""
from __future__ import annotations

import statistics
import tempfile
import time
from typing import Any

import jax

from experiments import checkpointing
from experiments import train
from experiments.benchmarks.common import Measurement
from experiments.benchmarks.train import bare_step
from experiments.configs import default
from experiments.trainer import parallel
from experiments.trainer import sharding


def _config(model: str):
  c = default.get_config()
  c.model.name = model
  c.model.overrides = {}
  c.data.name = 'digits'
  c.data.image_size = 32
  c.data.channels = 3
  c.batch_size = 16
  c.optimizer.name = 'adamw'
  c.optimizer.learning_rate = 1e-3
  c.optimizer.weight_decay = 0.05
  return c


def _seconds_per_step(step: Any, state: Any, args: tuple, steps: int, every: int,
                      mode: str) -> tuple[float, Any]:
  """(wall seconds per step of `steps` steps saving every `every` ('none' | 'sync' |
  'async'), the state after them): the donated state is carried to the next window."""
  with tempfile.TemporaryDirectory() as workdir:
    ckpt = (None if mode == 'none' else
            checkpointing.Checkpointer(workdir, keep=2, async_save=mode == 'async'))
    t0 = time.perf_counter()
    out = None
    for i in range(1, steps + 1):
      state, out = step(state, *args)
      if ckpt is not None and i % every == 0:
        ckpt.save(i, train.unreplicate(state))
    if ckpt is not None:
      ckpt.wait()
    jax.block_until_ready((state, out))
    seconds = (time.perf_counter() - t0) / steps
    if ckpt is not None:
      ckpt.close()
  return seconds, state


def _measure(label: str, model: str, steps: int, every: int, repeats: int
             ) -> list[Measurement]:
  setup = train.build(_config(model))
  state_bytes = sharding.per_device_bytes(parallel.state_shapes(setup), 'pmap', 1)
  step, state, args = bare_step(setup)
  state, out = step(state, *args)  # compiled once, outside every window
  jax.block_until_ready((state, out))
  modes = ('none', 'sync', 'async')
  samples = {m: [] for m in modes}
  for _ in range(repeats):
    for m in modes:
      seconds, state = _seconds_per_step(step, state, args, steps, every, m)
      samples[m].append(seconds)
  ms = {m: 1e3 * statistics.median(v) for m, v in samples.items()}
  overhead = {m: ms[m] - ms['none'] for m in ('sync', 'async')}
  extra = {'every': every, 'steps': steps, 'repeats': repeats, 'state_mb': state_bytes / 2**20,
           'step_ms': ms, 'overhead_ms': overhead}
  return [
      Measurement('checkpoint', f'{label}: async vs sync, save every {every}',
                  overhead['async'], overhead['sync'], 'ms/step',
                  'synchronous Checkpointer (overhead over no checkpoints)', extra=extra),
      Measurement('checkpoint', f'{label}: async save every {every} vs none', ms['async'],
                  ms['none'], 'ms/step', 'same steps without checkpoints', extra=extra),
      Measurement('checkpoint', f'{label}: sync save every {every} vs none', ms['sync'],
                  ms['none'], 'ms/step', 'same steps without checkpoints', extra=extra),
  ]


def run(quick: bool) -> list[Measurement]:
  if quick:
    return _measure('ViT-Ti/16 + AdamW', 'vit_tiny_patch16_224', steps=10, every=5, repeats=1)
  return _measure('ViT-S/16 + AdamW', 'vit_small_patch16_224', steps=40, every=5, repeats=3)
