r"""SegFormer on ADE20K (TFDS `scene_parse150`, 150 classes): the paper's recipe.

    python -m experiments.main --config=experiments/configs/segformer_ade20k.py --workdir=DIR
    python -m experiments.main --config=experiments/configs/segformer_ade20k.py:variant=b2 ...
    python -m experiments.main --config=experiments/configs/segformer_ade20k.py:backbone=swin_tiny_patch4_window7_224 ...
    python -m experiments.main --config=experiments/configs/segformer_ade20k.py:runlocal ...
    python -m experiments.main \
        --config=experiments/configs/segformer_ade20k.py:init=mit_b0.safetensors ...

Needs the prepared TFDS dataset (`tfds build scene_parse150`; nothing is
downloaded at run time). Caveat: TFDS builds it from the instance annotations,
which label only the 100 "thing" classes (mapped here to their SceneParse150
ids; the 50 stuff classes such as wall, sky, floor read 0 and are ignored;
see experiments/data/seg_pipeline.py), so its mIoU is not the benchmark's;
for the paper's numbers point `--config.data.name=segfolder:PATH` at
ADEChallengeData2016 with `--config.data.train_split=training
--config.data.eval_split=validation`. Recipe (Xie et al., NeurIPS 2021, §4.1; mmseg
`segformer_mit-b0_8xb2-160k_ade20k-512x512`): 512×512 crops, random
rescale of the (2048, 512) scale by 0.5–2.0, cat_max_ratio 0.75, flip,
photometric distortion; reduce_zero_label (class 0 “other” ignored);
pixel cross-entropy averaged over every pixel of the batch, ignored ones
counting 0 (mmseg's `avg_non_ignore=False` default: `task_options.loss_average
= 'all'`);
AdamW lr 6e-5, weight decay 0.01, betas (0.9, 0.999), linear warmup 1500
iterations, then poly decay with power 1 to 0 over 160k iterations; global
batch 16; single-scale evaluation as mmseg's test pipeline: each image
resized keeping its ratio to the (2048, 512) scale (`data.seg.eval_scale`),
whole-image inference (padded to a multiple of 128 per batch), the logits
of the image block resized back to the image's own label size and scored
there; `task_options.eval_mode='slide'` with crop 512, stride 341 is
mmseg's sliding mode (here over the padded canvas). On several processes canvases must agree: set
`data.seg.eval_scale=None` (images fitted into 512×512) and
`data.seg.eval_label_size` to the largest label side.

Initialisation (the paper's setup): the MiT encoder from its ImageNet-1k
classifier, the all-MLP decoder fresh (`init_from`, experiments/init_from.py).
`init=` names the checkpoint; the default `hf://nvidia/mit-<variant>` is read
from huggingface_hub's cache offline (`huggingface-cli download nvidia/mit-b0`
once, with network); a `.safetensors` file or a visopt workdir of
mit_imagenet.py works too; `init=` (empty) trains from scratch, as do
`backbone=` and `runlocal` unless `init=` is given.

Result quoted from the paper (ImageNet-1k pretrained encoders, not run here;
from scratch expect far less): ADE20K val
single-scale mIoU B0 37.4, B1 42.2, B2 46.5, B3 49.4, B4 50.3, B5 51.0.
The decode head trains with 10× the learning rate, as the paper (mmseg
`paramwise_cfg.custom_keys={'head': dict(lr_mult=10.)}`): `optimizer.lr_mult`
= {'decode_head': 10.0} (SegFormer's head parameters are `decode_head/...`;
AdamW's decoupled decay is scaled with the rate, as in torch). mmseg's
decay_mult=0 for 'norm' parameters is `optimizer.no_decay` =
('backbone/.*norm',): every LayerNorm of the encoder is exempt from weight
decay (mmseg's 'pos_block' key matches nothing in MiT). Backbones (`backbone=`): `swin_tiny_patch4_window7_224` or
`pvt_small` with the same all-MLP decoder (these encoders need
`image_size` = their `img_size`, so the crop is 224 for them, and their
eval images are fitted into 224×224).
"""
from __future__ import annotations

import ml_collections

from experiments.configs import common

RESULT = 'paper (ImageNet-pretrained): B0 37.4 mIoU, B2 46.5 mIoU (ADE20K val, single scale)'
VARIANTS = ('b0', 'b1', 'b2', 'b3', 'b4', 'b5')


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """ADE20K config; args: variant=b0..b5, backbone=NAME, init=PATH, runlocal."""
  args = common.parse_arg(arg, runlocal=False, variant='b0', backbone='', init=None)
  if args.variant not in VARIANTS:
    raise ValueError(f'variant={args.variant!r}; valid: {", ".join(VARIANTS)}')
  c = common.base_config()
  c.task = 'segmentation'
  c.task_options = ml_collections.ConfigDict(dict(eval_mode='whole', loss_average='all'))
  c.model.name = f'segformer_{args.variant}'
  c.model.overrides = ml_collections.ConfigDict()
  crop = 512
  if args.backbone:
    c.model.overrides.backbone = args.backbone
    crop = 224  # Swin/PVT encoders take their own img_size only
  if args.init is not None:
    c.init_from.path = args.init
  elif not (args.backbone or args.runlocal):
    c.init_from.path = f'hf://nvidia/mit-{args.variant}'
  c.data.name = 'scene_parse150'
  c.data.image_size = crop
  c.data.train_split = 'train'
  c.data.eval_split = 'test'  # TFDS scene_parse150 calls the ADE20K val set 'test'
  c.data.augment = 'seg'
  c.data.shuffle_buffer = 1000
  c.data.seg = ml_collections.ConfigDict(dict(
      num_classes=150, reduce_zero_label=True, scale=(2048, crop), ratio_range=(0.5, 2.0),
      cat_max_ratio=0.75, flip=True, photometric=True, pad=True, eval_size=crop,
      eval_scale=None if args.backbone else (2048, 512)))
  c.batch_size = 16
  c.eval_batch_size = 16
  c.total_steps = 160_000
  c.optimizer.name = 'adamw'
  c.optimizer.learning_rate = 6e-5
  c.optimizer.weight_decay = 0.01
  c.optimizer.b1 = 0.9
  c.optimizer.b2 = 0.999
  c.optimizer.lr_mult = ml_collections.ConfigDict({'decode_head': 10.0})
  c.optimizer.no_decay = ('backbone/.*norm',)
  c.schedule.name = 'poly'
  c.schedule.power = 1.0
  c.schedule.warmup_steps = 1500
  c.log_every = 50
  c.eval_every = 16_000
  c.checkpoint_every = 16_000
  if args.runlocal:
    common.runlocal(c, steps=2, batch_size=8)
    c.data.image_size = 32 if not args.backbone else crop
    c.data.seg.scale = (64, 32)
    c.data.seg.eval_size = c.data.image_size
    c.data.seg.eval_scale = None
    c.data.train_split = 'train[:16]'
    c.data.eval_split = 'test[:8]'
  return c
