"""Mixup and CutMix on device, inside the jitted train step (timm's `Mixup` semantics).

Mixup (Zhang et al. 2018) and CutMix (Yun et al. 2019) pair example i of the
global batch of B with its mirror j = B - 1 - i (timm flips the batch) and
draw λ ~ Beta(α, α):

    Mixup:  x̃_i = λ x_i + (1 - λ) x_j
    CutMix: x̃_i = x_i outside a box, x_j inside it; the box has sides
            ⌊H √(1-λ)⌋ × ⌊W √(1-λ)⌋ (each rounded down to even), a centre
            uniform over the pixels, and is clipped at the border; with
            `correct_lam` λ becomes 1 - (clipped box area) / (H W).
    target: t_i = λ ỹ_i + (1 - λ) ỹ_j,  ỹ = onehot·(1 - ε) + ε/K,

so label smoothing ε is folded into the soft targets (timm's
`mixup_target`: off value ε/K, on value 1 - ε + ε/K) and the loss must be
called with ε = 0 (`experiments.losses` takes soft targets directly).

Each example mixes with probability `prob`; when both alphas are positive,
CutMix is chosen with probability `switch_prob`, otherwise the one enabled.
`mode` says who shares a draw (λ, the switch, the box): 'batch' one draw for
the whole global batch, 'pair' one per mirror pair {i, B-1-i} (both members
swap the same box), 'elem' one per example.

Randomness contract (what makes 1 device = 8 devices). The caller passes one
key that is the SAME on every device (derived from the seed and the step,
before any device index is folded in). Every draw is keyed by
fold_in(key, index), with index 0 ('batch'), min(i, B-1-i) ('pair') or i
('elem') for GLOBAL example index i = device · b + local position. Inside
`pmap` (`axis_name` given) the mirror of device d's shard is device D-1-d's
shard reversed, fetched with one `lax.ppermute`. Hence for the same global
batch, laid out device-major as the input pipeline does (device d holds
examples [d b, (d+1) b)), the mixed images and targets are the same whether
the batch is mixed whole (`axis_name=None`, 1 device) or as D shards, for
any D dividing B, and independent of gradient accumulation (mix the device
shard before splitting it into micro-batches). B must be even.
"""
from __future__ import annotations

import dataclasses
from typing import Optional

import chex
import jax
import jax.numpy as jnp
import ml_collections

MODES = ('batch', 'pair', 'elem')


def default_config() -> ml_collections.ConfigDict:
  """The `mixup` config section; off (both alphas 0) by default."""
  c = ml_collections.ConfigDict()
  c.mixup_alpha = 0.0
  c.cutmix_alpha = 0.0
  c.prob = 1.0
  c.switch_prob = 0.5
  c.mode = 'batch'
  c.correct_lam = True
  return c


@dataclasses.dataclass(frozen=True)
class Mixup:
  """Batch mixing with timm's parameters; `__call__` runs under jit/pmap."""
  num_classes: int
  mixup_alpha: float = 0.0
  cutmix_alpha: float = 0.0
  prob: float = 1.0
  switch_prob: float = 0.5
  mode: str = 'batch'
  correct_lam: bool = True
  label_smoothing: float = 0.0

  def __post_init__(self):
    for key in ('mixup_alpha', 'cutmix_alpha'):
      value = getattr(self, key)
      if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ValueError(f'mixup.{key}={value!r}; must be a number >= 0 (0: off)')
    for key in ('prob', 'switch_prob'):
      value = getattr(self, key)
      if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ValueError(f'mixup.{key}={value!r}; must be a probability in [0, 1]')
    if self.mode not in MODES:
      raise ValueError(f'mixup.mode={self.mode!r}; valid: {", ".join(MODES)}')
    if not isinstance(self.correct_lam, bool):
      raise ValueError(f'mixup.correct_lam={self.correct_lam!r}; must be true or false')
    if not 0.0 <= self.label_smoothing < 1.0:
      raise ValueError(f'label_smoothing={self.label_smoothing!r}; must be in [0, 1)')
    if not isinstance(self.num_classes, int) or self.num_classes < 1:
      raise ValueError(f'num_classes={self.num_classes!r}; must be a positive int')

  @classmethod
  def from_config(cls, cfg: ml_collections.ConfigDict, num_classes: int,
                  label_smoothing: float = 0.0) -> 'Mixup':
    """From the `mixup` config section; ValueError (one line) on a bad value."""
    return cls(num_classes=num_classes, mixup_alpha=cfg.mixup_alpha,
               cutmix_alpha=cfg.cutmix_alpha, prob=cfg.prob, switch_prob=cfg.switch_prob,
               mode=cfg.mode, correct_lam=cfg.correct_lam, label_smoothing=label_smoothing)

  @property
  def enabled(self) -> bool:
    return self.mixup_alpha > 0 or self.cutmix_alpha > 0

  def targets(self, labels: jax.Array, partner_labels: jax.Array, lam: jax.Array) -> jax.Array:
    """t = λ ỹ + (1 - λ) ỹ_partner with smoothed one-hots ỹ, float32 `[b, K]`."""
    eps, k = self.label_smoothing, self.num_classes
    off, on = eps / k, 1.0 - eps + eps / k
    hot = lambda y: jax.nn.one_hot(y, k, dtype=jnp.float32) * (on - off) + off  # noqa: E731
    lam = lam.astype(jnp.float32)[:, None]
    return lam * hot(labels) + (1.0 - lam) * hot(partner_labels)

  def draw(self, rng: jax.Array, index: jax.Array, height: int, width: int
           ) -> tuple[jax.Array, jax.Array, jax.Array]:
    """(λ, cutmix flag, box (yl, yh, xl, xh)) for draw indices `index` `[b]`.

    λ is already corrected to the clipped box where CutMix is used and
    `correct_lam`; λ = 1 where the example is not mixed.
    """
    def one(i):
      k_apply, k_switch, k_mix, k_cut, k_y, k_x = jax.random.split(jax.random.fold_in(rng, i), 6)
      apply = jax.random.uniform(k_apply) < self.prob
      if self.mixup_alpha > 0 and self.cutmix_alpha > 0:
        cut = jax.random.uniform(k_switch) < self.switch_prob
      else:
        cut = jnp.asarray(self.cutmix_alpha > 0)
      lam_mix = (jax.random.beta(k_mix, self.mixup_alpha, self.mixup_alpha) if self.mixup_alpha > 0
                 else jnp.float32(1))
      lam_cut = (jax.random.beta(k_cut, self.cutmix_alpha, self.cutmix_alpha) if self.cutmix_alpha > 0
                 else jnp.float32(1))
      lam = jnp.where(cut, lam_cut, lam_mix).astype(jnp.float32)
      ratio = jnp.sqrt(1.0 - lam)
      half_h = jnp.floor(height * ratio).astype(jnp.int32) // 2
      half_w = jnp.floor(width * ratio).astype(jnp.int32) // 2
      cy = jax.random.randint(k_y, (), 0, height)
      cx = jax.random.randint(k_x, (), 0, width)
      box = (jnp.clip(cy - half_h, 0, height), jnp.clip(cy + half_h, 0, height),
             jnp.clip(cx - half_w, 0, width), jnp.clip(cx + half_w, 0, width))
      if self.correct_lam:
        area = (box[1] - box[0]) * (box[3] - box[2])
        lam = jnp.where(cut, 1.0 - area.astype(jnp.float32) / (height * width), lam)
      lam = jnp.where(apply, lam, 1.0)
      return lam, cut & apply, jnp.stack(box)

    return jax.vmap(one)(index)

  def __call__(self, rng: jax.Array, images: jax.Array, labels: jax.Array,
               axis_name: Optional[str] = None) -> tuple[jax.Array, jax.Array]:
    """Mixed images `[b, H, W, C]` (images' dtype) and soft targets float32 `[b, K]`.

    Args:
      rng: a key identical on every device (see the module docstring).
      images, labels: this device's shard `[b, H, W, C]`, `[b]` (the whole
        global batch when `axis_name` is None).
      axis_name: the pmap axis the global batch is sharded over, or None.
    """
    chex.assert_rank(images, 4)
    chex.assert_shape(labels, images.shape[:1])
    b, height, width = images.shape[:3]
    if axis_name is None:
      devices, device = 1, 0
      partner, partner_labels = images[::-1], labels[::-1]
    else:
      devices = jax.lax.axis_size(axis_name)
      device = jax.lax.axis_index(axis_name)
      perm = [(s, devices - 1 - s) for s in range(devices)]
      partner = jax.lax.ppermute(images, axis_name, perm)[::-1]
      partner_labels = jax.lax.ppermute(labels, axis_name, perm)[::-1]
    total = devices * b
    if total % 2:
      raise ValueError(f'Mixup/CutMix pair example i with B-1-i; the global batch B={total} '
                       'must be even')
    if not self.enabled:
      return images, self.targets(labels, partner_labels, jnp.ones((b,), jnp.float32))
    g = device * b + jnp.arange(b)
    index = {'batch': jnp.zeros_like(g), 'pair': jnp.minimum(g, total - 1 - g), 'elem': g}
    lam, cut, box = self.draw(rng, index[self.mode], height, width)
    rows = jnp.arange(height)[None, :, None]
    cols = jnp.arange(width)[None, None, :]
    inside = ((rows >= box[:, 0, None, None]) & (rows < box[:, 1, None, None])
              & (cols >= box[:, 2, None, None]) & (cols < box[:, 3, None, None]))
    inside = (inside & cut[:, None, None])[..., None]
    w = lam.astype(images.dtype)[:, None, None, None]
    blended = jnp.where((lam < 1)[:, None, None, None], w * images + (1 - w) * partner, images)
    mixed = jnp.where(cut[:, None, None, None], jnp.where(inside, partner, images), blended)
    return mixed, self.targets(labels, partner_labels, lam)


def from_experiment(config: ml_collections.ConfigDict, num_classes: int) -> Optional[Mixup]:
  """The run's `Mixup` (label smoothing folded in), or None when off or the section is absent.

  Raises ValueError (one line) for bad `mixup.*` values and for settings
  mixing cannot serve: a loss without soft targets (hinge), full-batch
  training, or a non-classification task.
  """
  cfg = config.get('mixup')
  if cfg is None:
    return None
  mix = Mixup.from_config(cfg, num_classes, float(config.get('label_smoothing', 0.0)))
  if not mix.enabled:
    return None
  if config.get('loss') == 'hinge':
    raise ValueError('mixup/cutmix with loss=hinge; mixed targets need a probabilistic loss '
                     '(softmax_xent, sigmoid_xent, kl, l2)')
  if config.get('full_batch'):
    raise ValueError('mixup/cutmix with full_batch=True; full-batch training is deterministic, '
                     'set mixup.mixup_alpha=0 and mixup.cutmix_alpha=0')
  if config.get('task', 'classification') != 'classification':
    raise ValueError(f'mixup/cutmix with task={config.task!r}; only classification mixes labels')
  return mix
