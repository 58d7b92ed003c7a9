"""SegFormer (Xie et al., NeurIPS 2021): a hierarchical encoder + the all-MLP decoder.

    [F_1, F_2, F_3, F_4] = Encoder(image)        strides 4, 8, 16, 32
    logits = AllMLPDecoder(F_1…F_4)              [B, H/4, W/4, classes]

The encoder is a Mix Transformer (`vision.mit.MixTransformer`, built from this
module's fields) unless `backbone` is given: any module with the
`__call__(x, train, features_only=True) -> list of NHWC maps` contract (MiT,
PVT, Swin). `vision.create_model('segformer_b0', backbone='pvt_small')`
resolves a registered name into that module (sharing img_size, in_chans,
drop_path_rate and dtype). The encoder's variables live under 'backbone', the
decoder's under 'decode_head'.

Calling convention: `module.apply(variables, images, train=False)` with NHWC
float32 images returns logits at 1/4 resolution (upsample them to the label
size for the loss; ignore index 255 in the paper's setup). The decoder has a
BatchNorm, so `train=True` needs `rngs={'dropout': key}` *and*
`mutable=['batch_stats']`, and returns `(logits, {'batch_stats': …})`.

LayerNorm eps as in `vision.mit`: original 1e-6 blocks / 1e-5 embeddings by
default; HF uses 1e-5 everywhere (`norm_eps=1e-5`). Decoder width C = 256
for B0/B1 and 768 for B2–B5; default 150 classes (ADE20K) at 512×512.
"""
from __future__ import annotations

from typing import Any, Optional, Sequence, Union

import flax.linen as nn
import jax
import jax.numpy as jnp

from vision import decoders
from vision import mit
from vision.spec import ModelDef

Dtype = Any


class SegFormer(nn.Module):
  """Hierarchical encoder + all-MLP decoder.

  Attributes:
    num_classes: segmentation classes.
    img_size: initialisation/summary size; the MiT encoder accepts other sizes,
      a Swin/PVT backbone only its own `img_size`.
    in_chans: input channels.
    patch_sizes, strides, embed_dims, depths, num_heads, mlp_ratios,
      sr_ratios, qkv_bias, norm_eps, embed_norm_eps: the MiT encoder's (unused
      with `backbone`).
    drop_rate: encoder dropout.
    drop_path_rate: encoder stochastic depth (0.1 in the released configs).
    decoder_dim: decoder width C.
    decoder_drop_rate: dropout before the classifier.
    bn_axis_name: the decoder's BatchNorm statistics over this pmap axis
      (SyncBN, as mmseg trains SegFormer); None: per device.
    dtype: computation dtype (parameters stay float32).
    scan_blocks, remat: the encoder's (`vision.mit.MixTransformer`; a named
      `backbone` takes them too where it has them).
    backbone: an encoder module with a `features_only` pyramid, or None for
      the MiT described by the fields above.
  """
  num_classes: int = 150
  img_size: Union[int, Sequence[int]] = 512
  in_chans: int = 3
  patch_sizes: Sequence[int] = (7, 3, 3, 3)
  strides: Sequence[int] = (4, 2, 2, 2)
  embed_dims: Sequence[int] = (32, 64, 160, 256)
  depths: Sequence[int] = (2, 2, 2, 2)
  num_heads: Sequence[int] = (1, 2, 5, 8)
  mlp_ratios: Sequence[float] = (4, 4, 4, 4)
  sr_ratios: Sequence[int] = (8, 4, 2, 1)
  qkv_bias: bool = True
  norm_eps: float = 1e-6
  embed_norm_eps: float = 1e-5
  drop_rate: float = 0.0
  drop_path_rate: float = 0.1
  decoder_dim: int = 256
  decoder_drop_rate: float = 0.1
  bn_axis_name: Optional[str] = None
  dtype: Dtype = jnp.float32
  scan_blocks: bool = False
  remat: bool = False
  backbone: Optional[nn.Module] = None

  def _mit(self, **kwargs: Any) -> mit.MixTransformer:
    return mit.MixTransformer(
        **kwargs,
        num_classes=0, img_size=self.img_size, in_chans=self.in_chans,
        patch_sizes=self.patch_sizes, strides=self.strides, embed_dims=self.embed_dims,
        depths=self.depths, num_heads=self.num_heads, mlp_ratios=self.mlp_ratios,
        sr_ratios=self.sr_ratios, qkv_bias=self.qkv_bias, drop_rate=self.drop_rate,
        drop_path_rate=self.drop_path_rate, norm_eps=self.norm_eps,
        embed_norm_eps=self.embed_norm_eps, dtype=self.dtype, scan_blocks=self.scan_blocks,
        remat=self.remat)

  def validate(self) -> None:
    """Raises a ValueError for configurations that cannot run."""
    if self.num_classes < 1:
      raise ValueError(f'SegFormer: num_classes={self.num_classes} must be ≥ 1.')
    if self.decoder_dim < 1:
      raise ValueError(f'SegFormer: decoder_dim={self.decoder_dim} must be ≥ 1.')
    if not 0.0 <= self.decoder_drop_rate < 1.0:
      raise ValueError(f'SegFormer: decoder_drop_rate={self.decoder_drop_rate} must be in [0, 1).')
    if self.backbone is None:
      self._mit(parent=None).validate()
      return
    if not callable(getattr(self.backbone, '__call__', None)):
      raise ValueError(f'SegFormer: backbone={self.backbone!r} is not a flax module.')
    in_chans = getattr(self.backbone, 'in_chans', self.in_chans)
    if in_chans != self.in_chans:
      raise ValueError(f'SegFormer: in_chans={self.in_chans} but the backbone expects '
                       f'{in_chans}; make them equal.')
    validate = getattr(self.backbone, 'validate', None)
    if validate is not None:
      validate()

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    """Logits [B, ⌈H/4⌉, ⌈W/4⌉, num_classes] from NHWC images."""
    if x.ndim != 4 or x.shape[-1] != self.in_chans:
      raise ValueError(
          f'SegFormer expects NHWC images [batch, H, W, {self.in_chans}] '
          f'(in_chans={self.in_chans}), got {tuple(x.shape)}.')
    encoder = self.backbone if self.backbone is not None else self._mit(name='backbone')
    features = encoder(x, train=train, features_only=True)
    if len(features) != 4:
      raise ValueError(f'SegFormer expects a 4-level pyramid from the backbone, got '
                       f'{len(features)} maps.')
    return decoders.AllMLPDecoder(self.num_classes, self.decoder_dim, self.decoder_drop_rate,
                                  bn_axis_name=self.bn_axis_name, dtype=self.dtype,
                                  name='decode_head')(features, train=train)


MODELS = {
    f'segformer_{v}': ModelDef(
        family='segformer', cls=SegFormer, task='segmentation',
        kwargs={'embed_dims': dims, 'depths': depths,
                'decoder_dim': 256 if v in ('b0', 'b1') else 768})
    for v, (dims, depths) in mit.CONFIGS.items()
}
