"""Benchmark section `seg`: SegFormer-B0 training step against HuggingFace's PyTorch SegFormer.

    python -m experiments.benchmark --only seg [--quick]

Both sides run one full training step on the same batch (2 images at
512×512, `--quick`: 256×256, 150 classes, labels with some 255 pixels):
forward in train mode (dropout, drop path 0.1, BatchNorm batch statistics),
per-pixel cross-entropy on logits bilinearly upsampled to the labels
(ignore 255), backward, AdamW update. Ours: `vision.create_model('segformer_b0')`
with the `Segmentation` task's loss, `jax.jit` with the state donated (the
trainer's step without pmap). Peer: `transformers.SegformerForSemanticSegmentation`
(B0 config, random weights; its loss does the same upsampling and
ignore_index) with `torch.optim.AdamW`, on CPU with torch's default threads.
Figures are images/s (median of interleaved repeats); ratio = ours / peer.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

import vision
from experiments.benchmarks.common import Measurement
from experiments.benchmarks.common import interleaved_times
from experiments.segmentation import task as seg_task

NUM_CLASSES = 150


def _batch(size: int, batch: int):
  rng = np.random.default_rng(0)
  images = rng.normal(size=(batch, size, size, 3)).astype(np.float32)
  labels = rng.integers(0, NUM_CLASSES, size=(batch, size, size)).astype(np.int32)
  labels[:, : size // 8] = 255
  return images, labels


def _ours(images: np.ndarray, labels: np.ndarray):
  size = images.shape[1]
  module = vision.create_model('segformer_b0', num_classes=NUM_CLASSES, img_size=size)
  task = seg_task.Segmentation(num_classes=NUM_CLASSES)
  variables = module.init({'params': jax.random.PRNGKey(0)}, jnp.zeros((1, size, size, 3)))
  params, batch_stats = variables['params'], variables['batch_stats']
  tx = optax.adamw(6e-5, weight_decay=0.01)
  opt_state = tx.init(params)

  def step(state, x, y, key):
    params, batch_stats, opt_state = state

    def loss_fn(p):
      logits, new = module.apply({'params': p, 'batch_stats': batch_stats}, x, train=True,
                                 rngs={'dropout': key}, mutable=['batch_stats'])
      return jnp.mean(task.losses(logits, y)), new['batch_stats']

    (loss, new_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return (optax.apply_updates(params, updates), new_stats, opt_state), loss

  step = jax.jit(step, donate_argnums=(0,))
  x, y = jnp.asarray(images), jnp.asarray(labels)
  holder = {'state': (params, batch_stats, opt_state), 'i': 0}

  def run():
    holder['i'] += 1
    holder['state'], loss = step(holder['state'], x, y, jax.random.PRNGKey(holder['i']))
    return loss

  return run


def _peer(images: np.ndarray, labels: np.ndarray):
  import torch  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top
  torch.manual_seed(0)
  config = transformers.SegformerConfig(num_labels=NUM_CLASSES)
  model = transformers.SegformerForSemanticSegmentation(config).train()
  opt = torch.optim.AdamW(model.parameters(), lr=6e-5, weight_decay=0.01)
  x = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
  y = torch.from_numpy(labels).long()

  def run():
    opt.zero_grad(set_to_none=True)
    loss = model(pixel_values=x, labels=y).loss
    loss.backward()
    opt.step()
    return loss.item()

  return run


def run(quick: bool) -> list[Measurement]:
  size, batch = (256, 2) if quick else (512, 2)
  repeats = 3 if quick else 5
  images, labels = _batch(size, batch)
  fns = {'ours': _ours(images, labels), 'peer': _peer(images, labels)}
  times = interleaved_times(fns, repeats=repeats, warmup=1,
                            sync=lambda out: jax.block_until_ready(out)
                            if isinstance(out, jax.Array) else out)
  return [Measurement('seg', f'segformer_b0 train step {size}px b{batch}', batch / times['ours'],
                      batch / times['peer'], 'images/s', 'HF SegformerForSemanticSegmentation '
                      '(PyTorch CPU) + torch AdamW', higher_is_better=True,
                      extra={'ours_s': times['ours'], 'peer_s': times['peer']})]
