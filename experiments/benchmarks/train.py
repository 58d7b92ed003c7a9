"""Benchmark section `train`: the training loop against its bare step, the input pipeline against the trainer.

    python -m experiments.benchmark --only train [--quick]

Three questions, for the default config (ViT on digits) and a CIFAR-shaped
one (vit_cifar10's model on 32×32×3 images with the CIFAR crop+flip
augmentation at batch 32; the digits resized to 32×32×3 stand in for
CIFAR-10, which needs a download). Each rate is timed over at least 50 steps
(20 with `--quick`):

1. Loop overhead: steps/s of `train.train_and_evaluate` (data pipeline,
   prefetch, the one-step-late NaN check, logging) against the same pmap'd
   `train_step` called back to back on one device-resident batch. The loop's
   rate is its own `steps_per_sec` over the second half of the run (after
   compilation; evaluation and checkpoints are excluded by the loop's timer
   and happen only at the end). Loop runs alternate with blocks of bare
   steps (bare, loop, bare, loop, …, bare), and each loop run is compared
   with the mean of the two blocks around it: a VM's speed drifts by more
   than the overhead measured within minutes, so only paired rates are
   compared. The row shows the loop run whose paired ratio is the median
   (an odd number of runs) and its bracketing bare rate; ratio = that
   median paired ratio; goal ≥ 0.95.
2. Input pipeline: host images/s of `data.make_train_iterator` (decode,
   augment, normalize, batch) against the images/s the bare step consumes.
   ratio = pipeline / trainer; goal > 1 (the pipeline is never the bottleneck).
3. Step overhead: the bare pmap'd `train_step` (micro-batch split, metrics,
   collectives, NaN flag) against a plain `jax.jit` step written directly —
   loss of `module.apply` on the whole batch, `jax.grad`, `tx.update` — on
   the same batch on one device, each plain block right after a bare one.
   ratio = median bare / median plain; goal ≥ 0.95. (Guards
   against overhead like the step's former length-1 micro-batch scan, in
   which XLA:CPU ran SegFormer-B0's convolutions at 0.03× the plain speed.)
"""
from __future__ import annotations

import functools
import os
import statistics
import tempfile
import time
from typing import Any, Callable

import jax
import optax

from experiments import data as data_lib
from experiments import metrics as metrics_lib
from experiments import train
from experiments.benchmarks.common import Measurement
from experiments.configs import default
from experiments.configs import vit_cifar10


def _cifar_shaped():
  c = vit_cifar10.get_config()
  c.data.name = 'digits'
  c.data.image_size = 32
  c.data.channels = 3
  c.data.augment = 'cifar'
  c.batch_size = 32  # keeps 200 timed steps of this section within minutes on 2 cores
  return c


def bare_step(setup: train.Setup) -> tuple[Callable[..., Any], Any, tuple]:
  """(pmap'd train_step, replicated initial state, (one device-resident batch, rngs)):
  `state, metrics = step(state, *args)` is the loop's update without its input pipeline."""
  state = train.replicate(train.init_state(setup, jax.random.PRNGKey(0)), setup.devices)
  rngs = train.replicate(jax.random.PRNGKey(1), setup.devices)
  it = data_lib.make_train_iterator(setup.config.data, setup.global_batch, 0,
                                    num_local_devices=setup.num_local_devices)
  batch = next(data_lib.prefetch_to_device(it, 1, setup.devices))
  step = jax.pmap(train.make_train_step(setup), axis_name=train.AXIS, donate_argnums=(0,),
                  devices=setup.devices)
  return step, state, (batch, rngs)


class _Blocks:
  """Times blocks of `steps` back-to-back calls `carry, out = step(carry, *args)`,
  carrying the (donated) state from block to block; compiled by the first call."""

  def __init__(self, step: Callable[..., Any], carry: Any, args: tuple, steps: int):
    self.step, self.carry, self.args, self.steps = step, carry, args, steps
    self.carry, out = step(self.carry, *args)
    jax.block_until_ready(out)

  def rate(self) -> float:
    """Steps/s of one block."""
    t0 = time.perf_counter()
    out = None
    for _ in range(self.steps):
      self.carry, out = self.step(self.carry, *self.args)
    jax.block_until_ready((self.carry, out))
    return self.steps / (time.perf_counter() - t0)


def _plain_step(setup: train.Setup) -> tuple[Callable[..., Any], Any, tuple]:
  """(hand-written jit step: loss, grad, update on the global batch, its carry, (rng,))."""
  state = train.init_state(setup, jax.random.PRNGKey(0))
  it = data_lib.make_train_iterator(setup.config.data, setup.global_batch, 0,
                                    num_local_devices=1)
  batch = jax.device_put(jax.tree.map(lambda x: x[0], next(it)), setup.devices[0])
  module, task, tx = setup.module, setup.task, setup.tx
  mutable = list(state.model_state)

  def loss_fn(params, model_state, rng):
    variables = {'params': params, **model_state}
    kwargs = dict(train=True, rngs={'dropout': rng})
    if mutable:
      logits, new_state = module.apply(variables, batch['image'], mutable=mutable, **kwargs)
    else:
      logits, new_state = module.apply(variables, batch['image'], **kwargs), model_state
    return jax.numpy.mean(task.losses(logits, batch['label'])), new_state

  @functools.partial(jax.jit, donate_argnums=(0,))
  def step(carry, rng):
    params, model_state, opt_state = carry
    (loss, model_state), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        params, model_state, rng)
    updates, opt_state = tx.update(grads, opt_state, params)
    return (optax.apply_updates(params, updates), model_state, opt_state), loss

  carry = jax.device_put((state.params, state.model_state, state.opt_state), setup.devices[0])
  return step, carry, (jax.random.PRNGKey(1),)


def _loop_steps_per_sec(config, steps: int) -> float:
  config = config.copy_and_resolve_references()
  config.total_epochs = None
  config.total_steps = 2 * steps
  config.log_every = steps
  config.eval_every = 0
  config.checkpoint_every = 0
  config.schedule.warmup_epochs = None
  config.schedule.warmup_steps = None
  setup = train.build(config)
  with tempfile.TemporaryDirectory() as workdir:
    train.train_and_evaluate(setup, workdir, progress_stream=open(os.devnull, 'w'))
    records = metrics_lib.read_jsonl(os.path.join(workdir, metrics_lib.METRICS_FILE))
  return records[-1]['steps_per_sec']


def _alternating(config, setup: train.Setup, steps: int, rounds: int) -> dict[str, Any]:
  """Loop runs, bare-step blocks and plain-step blocks, alternated.

  bare, plain, loop, bare, plain, loop, …, bare, plain (`rounds` loop runs):
  each loop run is paired with the mean of the bare blocks just before and
  after it, and each bare block with the plain block right after it.
  'loop' and 'bare_around_loop' are the pair with the median ratio.
  """
  if rounds % 2 == 0:
    raise ValueError(f'rounds must be odd so that one run has the median ratio, got {rounds}')
  bare = _Blocks(*bare_step(setup), steps)
  plain = _Blocks(*_plain_step(setup), steps)
  bare_rates, plain_rates, loop_rates = [bare.rate()], [plain.rate()], []
  for _ in range(rounds):
    loop_rates.append(_loop_steps_per_sec(config, steps))
    bare_rates.append(bare.rate())
    plain_rates.append(plain.rate())
  brackets = [(a + b) / 2 for a, b in zip(bare_rates, bare_rates[1:])]
  paired = [l / b for l, b in zip(loop_rates, brackets)]
  median_run = sorted(range(rounds), key=paired.__getitem__)[rounds // 2]
  return {'loop': loop_rates[median_run], 'bare_around_loop': brackets[median_run],
          'bare': statistics.median(bare_rates), 'plain': statistics.median(plain_rates),
          'loop_runs': loop_rates, 'bare_blocks': bare_rates, 'plain_blocks': plain_rates,
          'loop_over_bare_paired': paired,
          'bare_over_plain_paired': [b / p for b, p in zip(bare_rates, plain_rates)]}


def _measure(label: str, config, steps: int, rounds: int, pipeline_batches: int
             ) -> list[Measurement]:
  setup = train.build(config)
  rates = _alternating(config, setup, steps, rounds=rounds)
  pipeline = data_lib.measure_throughput(config.data, setup.global_batch, pipeline_batches,
                                         num_local_devices=setup.num_local_devices)
  bare, plain, loop = rates['bare'], rates['plain'], rates['loop']
  consumption = bare * setup.global_batch
  extra = {'batch': setup.global_batch, 'devices': setup.num_devices, 'steps_per_block': steps,
           **{k: v for k, v in rates.items() if isinstance(v, list)}}
  return [
      Measurement('train', f'{label}: bare vs plain jit step', bare, plain, 'steps/s',
                  'hand-written jit(loss, grad, update), same batch, one device',
                  higher_is_better=True, extra=extra),
      Measurement('train', f'{label}: loop vs bare step', loop, rates['bare_around_loop'],
                  'steps/s',
                  'same pmapped train_step, one resident batch', higher_is_better=True,
                  extra=extra),
      Measurement('train', f'{label}: input pipeline vs trainer', pipeline, consumption,
                  'images/s', 'images/s the bare step consumes', higher_is_better=True,
                  extra=extra),
  ]


def run(quick: bool) -> list[Measurement]:
  # The default config's steps are short (a small ViT on 32×32 digits): 500-step blocks keep
  # each timed window long enough to average out the VM's jitter, and five loop runs are
  # cheap enough to make the median pair robust.
  out = _measure('default (ViT, digits)', default.get_config(), 20 if quick else 500,
                 rounds=1 if quick else 5, pipeline_batches=20 if quick else 200)
  out += _measure('CIFAR-shaped (vit_cifar10, 32x32x3, b32)', _cifar_shaped(),
                  20 if quick else 50, rounds=1 if quick else 3,
                  pipeline_batches=10 if quick else 50)
  return out
