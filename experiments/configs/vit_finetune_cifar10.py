r"""ViT-B/16 pretrained on ImageNet-21k (AugReg), fine-tuned on CIFAR-10 at 384×384.

    gsutil cp gs://vit_models/augreg/B_16-i21k-300ep-lr_0.001-aug_medium1-wd_0.1-do_0.0-sd_0.0.npz .
    python -m experiments.main --config=experiments/configs/vit_finetune_cifar10.py \
        --config.init_from.path=B_16-i21k-300ep-lr_0.001-aug_medium1-wd_0.1-do_0.0-sd_0.0.npz \
        --workdir=/tmp/vit_b16_c10
    python -m experiments.main --config=experiments/configs/vit_finetune_cifar10.py:runlocal ...

Weights: the AugReg ViT-B/16 ImageNet-21k checkpoint (Steiner et al., "How to
train your ViT?", 2021), published by google-research/vision_transformer as
a `.npz` in Google's naming (`Transformer/encoderblock_N/...`), read by
`init_from` (experiments/init_from.py). It was trained at 224: the 14×14
grid of position embeddings is resized bicubically to 24×24 for 384 (the
class token's kept), as HF's `interpolate_pos_encoding`; the 21,843-class
head is replaced by a zero 10-class head (`init_from.head='auto'`, as
big_vision's `zero_head`).

Recipe: big_vision's / vision_transformer's transfer recipe (Dosovitskiy et
al. 2021, Appendix B.1.1): SGD with momentum 0.9, no weight decay, peak
learning rate 0.03, 500 linear warmup steps then cosine decay to 0 over
10,000 steps at batch 512 (~102 epochs), gradient clipping at global norm
1.0; images resized to 384 (bilinear) with random horizontal flips for
training (vision_transformer's pipeline also takes random 384 crops of a
448 resize), pixels scaled to [-1, 1] (mean 0.5, std 0.5); no label
smoothing, no mixup, no dropout or stochastic depth.

Result quoted from the papers (not run here: CIFAR-10 is a TFDS download
and the weights a 330 MB file; this machine has no network): ViT-B/16
ImageNet-21k → CIFAR-10 at 384, 98.9–99.0% top-1 (Dosovitskiy et al.
Table 2 / AugReg's transfer results).
"""
from __future__ import annotations

import ml_collections

from experiments.configs import common

RESULT = 'paper: 98.9-99.0% CIFAR-10 top-1 (ViT-B/16, ImageNet-21k, fine-tuned at 384)'
CHECKPOINT = 'B_16-i21k-300ep-lr_0.001-aug_medium1-wd_0.1-do_0.0-sd_0.0.npz'


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """`runlocal`: a tiny ViT at 32 px for a few steps, from scratch (init_from.path '')."""
  args = common.parse_arg(arg, runlocal=False)
  c = common.base_config()
  c.model.name = 'vit_base_patch16_224'
  c.model.overrides = ml_collections.ConfigDict(dict(
      img_size=384, drop_rate=0.0, drop_path_rate=0.0))
  c.init_from.path = CHECKPOINT
  c.init_from.head = 'auto'
  c.data.name = 'cifar10'
  c.data.image_size = 384
  c.data.augment = 'flip'
  c.data.mean = (0.5, 0.5, 0.5)
  c.data.std = (0.5, 0.5, 0.5)
  c.data.eval_split = 'test'
  c.batch_size = 512
  c.total_steps = 10_000
  c.optimizer.name = 'sgd'
  c.optimizer.learning_rate = 0.03
  c.optimizer.momentum = 0.9
  c.schedule.name = 'cosine'
  c.schedule.warmup_steps = 500
  c.grad_clip_norm = 1.0
  c.label_smoothing = 0.0
  c.log_every = 50
  c.eval_every = 1000
  c.checkpoint_every = 1000
  if args.runlocal:
    common.runlocal(c, steps=4, batch_size=16)
    c.data.image_size = 32
    c.init_from.path = ''
    c.model.overrides.update(dict(img_size=32, depth=2, embed_dim=48, num_heads=3))
  return c
