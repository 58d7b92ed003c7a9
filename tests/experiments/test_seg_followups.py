"""Segmentation follow-ups: per-path lr multipliers, throughput, scene_parse150 labels."""
import io

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from PIL import Image

import optim
from optim import policy
import vision
from experiments import data
from experiments import train
from experiments.configs import common
from experiments.configs import segformer_ade20k
from experiments.data import pipeline
from experiments.data import seg_pipeline


# ---------------------------------------------------------------------------
# optimizer.lr_mult
# ---------------------------------------------------------------------------

def _params():
  rng = np.random.default_rng(0)
  def leaf(*shape):
    return jnp.asarray(rng.normal(size=shape), jnp.float32)
  return {'body': {'kernel': leaf(4, 3), 'bias': leaf(3)},
          'head': {'kernel': leaf(3, 2), 'bias': leaf(2)}}


def _grads(step):
  rng = np.random.default_rng(100 + step)
  return jax.tree.map(lambda p: jnp.asarray(rng.normal(size=p.shape), jnp.float32), _params())


def _adamw_config(lr_mult=None):
  c = common.base_config()
  c.optimizer.name = 'adamw'
  c.optimizer.learning_rate = 1e-2
  c.optimizer.weight_decay = 0.05
  if lr_mult is not None:
    c.optimizer.lr_mult = ml_collections.ConfigDict(lr_mult)
  return c


def _run(tx, steps):
  params = _params()
  state = tx.init(params)
  for t in range(steps):
    updates, state = tx.update(_grads(t), state, params)
    params = optax.apply_updates(params, updates)
  return params


def test_lr_mult_one_adamw_step_moves_head_exactly_10x():
  base_tx = train.make_optimizer(_adamw_config(), 1e-2)
  mult_tx = train.make_optimizer(_adamw_config({'head': 10.0}), 1e-2)
  start, base, mult = _params(), _run(base_tx, 1), _run(mult_tx, 1)
  step_base = jax.tree.map(jnp.subtract, base, start)
  step_mult = jax.tree.map(jnp.subtract, mult, start)
  for name in ('kernel', 'bias'):
    np.testing.assert_array_equal(mult['body'][name], base['body'][name])
    np.testing.assert_allclose(step_mult['head'][name], 10.0 * step_base['head'][name],
                               rtol=2e-5, atol=1e-7)
    assert float(jnp.max(jnp.abs(step_base['head'][name]))) > 1e-3  # the step is not trivial


def test_lr_mult_equals_a_10x_learning_rate_for_the_head_along_a_schedule():
  schedule = optim.schedules.warmup(optim.schedules.cosine_decay(1e-2, 10), 2)
  mult = _run(train.make_optimizer(_adamw_config({'head': 10.0}), schedule), 4)
  base = _run(train.make_optimizer(_adamw_config(), schedule), 4)
  ten_x = _run(train.make_optimizer(_adamw_config(), lambda t: 10.0 * schedule(t)), 4)
  for name in ('kernel', 'bias'):
    np.testing.assert_array_equal(mult['body'][name], base['body'][name])
    np.testing.assert_allclose(mult['head'][name], ten_x['head'][name], rtol=1e-5, atol=1e-6)


def test_lr_multipliers_longest_pattern_wins_and_regex_paths():
  params = {'decode_head': {'linear_c1': {'kernel': 0.0}, 'classifier': {'kernel': 0.0}},
            'backbone': {'head_norm': {'scale': 0.0}}}
  factors = policy.lr_multipliers(params, {'head': 2.0, 'decode_head/classifier': 0.0,
                                          '^decode_head/': 10.0})
  assert factors == {'decode_head': {'linear_c1': {'kernel': 10.0}, 'classifier': {'kernel': 0.0}},
                     'backbone': {'head_norm': {'scale': 2.0}}}


def test_lr_mult_bad_patterns_and_values_raise():
  tx = train.make_optimizer(_adamw_config({'decoder': 10.0}), 1e-2)
  with pytest.raises(ValueError, match=r"\['decoder'\] match no parameter.*top-level parameter "
                     r'names: body, head'):
    tx.init(_params())
  with pytest.raises(ValueError, match=r"lr_mult\['head'\]=-1.0; must be a number >= 0"):
    policy.lr_multipliers(_params(), {'head': -1.0})
  with pytest.raises(ValueError, match=r"pattern '\(head' is not a regular expression"):
    policy.lr_multipliers(_params(), {'(head': 2.0})
  c = _adamw_config({'head': 10.0})
  c.optimizer = ml_collections.ConfigDict(dict(name='lbfgs', lr_mult={'head': 10.0}))
  with pytest.raises(ValueError, match="optimizer.name='lbfgs'.*first-order optimizer"):
    train.make_optimizer(c, None)


def test_segformer_ade20k_lr_mult_hits_exactly_the_decode_head():
  c = segformer_ade20k.get_config()
  assert c.optimizer.lr_mult.to_dict() == {'decode_head': 10.0}
  module = vision.create_model('segformer_b0', num_classes=150, img_size=64)
  shapes = jax.eval_shape(lambda r: module.init(r, jnp.zeros((1, 64, 64, 3))),
                          jax.random.PRNGKey(0))
  factors = policy.lr_multipliers(shapes['params'], c.optimizer.lr_mult.to_dict())
  head = jax.tree.leaves(factors['decode_head'])
  backbone = jax.tree.leaves(factors['backbone'])
  assert len(head) == 13 and set(head) == {10.0}
  assert len(backbone) > 100 and set(backbone) == {1.0}


def test_no_decay_matches_optax_adamw_with_the_same_mask():
  """optimizer.no_decay exempts the matched leaves from the decoupled decay:
  the trajectory is optax.adamw's with mask = not matched, step by step."""
  c = _adamw_config()
  c.optimizer.no_decay = ('bias', '^head/')
  ours = train.make_optimizer(c, 1e-2)
  mask = {'body': {'kernel': True, 'bias': False}, 'head': {'kernel': False, 'bias': False}}
  oracle = optax.adamw(1e-2, weight_decay=0.05, eps=1e-8, mask=mask)
  p_ours = p_ref = _params()
  s_ours, s_ref = ours.init(p_ours), oracle.init(p_ref)
  for t in range(5):
    u, s_ours = ours.update(_grads(t), s_ours, p_ours)
    p_ours = optax.apply_updates(p_ours, u)
    u, s_ref = oracle.update(_grads(t), s_ref, p_ref)
    p_ref = optax.apply_updates(p_ref, u)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7),
                 p_ours, p_ref)
  decayed = _run(train.make_optimizer(_adamw_config(), 1e-2), 5)
  assert not np.allclose(decayed['body']['bias'], p_ours['body']['bias'], rtol=0, atol=1e-7)


def test_no_decay_bad_values_raise():
  c = _adamw_config()
  c.optimizer.no_decay = ('decoder',)
  with pytest.raises(ValueError, match=r"optimizer.no_decay pattern\(s\) \['decoder'\] match "
                     'no parameter'):
    policy.no_decay_mask(c.optimizer.no_decay)(_params())
  c = _adamw_config()
  c.optimizer.no_decay = 'bias'
  with pytest.raises(ValueError, match='must be a list of path patterns'):
    train.make_optimizer(c, 1e-2)
  c = _adamw_config()
  c.optimizer.name, c.optimizer.no_decay = 'adam', ('bias',)
  with pytest.raises(ValueError, match="needs an optimizer with a weight-decay mask.*'adam'"):
    train.make_optimizer(c, 1e-2)


def test_segformer_ade20k_no_decay_hits_exactly_the_encoder_norms():
  """mmseg's decay_mult=0 on 'norm' keys: every LayerNorm of the MiT encoder
  (blocks, SR, patch-embedding and stage norms), not the decode head's BatchNorm."""
  c = segformer_ade20k.get_config()
  module = vision.create_model('segformer_b0', num_classes=150, img_size=64)
  shapes = jax.eval_shape(lambda r: module.init(r, jnp.zeros((1, 64, 64, 3))),
                          jax.random.PRNGKey(0))
  mask = policy.no_decay_mask(c.optimizer.to_dict()['no_decay'])(shapes['params'])
  flat = {'/'.join(str(k.key) for k in path): m
          for path, m in jax.tree_util.tree_flatten_with_path(mask)[0]}
  exempt = sorted(k for k, m in flat.items() if not m)
  assert all(k.startswith('backbone/') and 'norm' in k for k in exempt)
  # 2 per block norm (2 per block, 8 blocks), SR norms (stages 1-3, 6 blocks),
  # patch-embedding norms (4) and stage norms (4): scale + bias each.
  assert len(exempt) == 2 * (2 * 8 + 6 + 4 + 4)
  assert flat['decode_head/batch_norm/scale'] and flat['backbone/block1_0/attn/q/kernel']


# ---------------------------------------------------------------------------
# Throughput counts examples, not label pixels.
# ---------------------------------------------------------------------------

def test_iterate_counts_segmentation_images_not_pixels(monkeypatch):
  cfg = data.default_config()
  cfg.name, cfg.image_size, cfg.augment = 'shapes', 16, 'none'
  cfg.train_split, cfg.eval_split = 'train[:32]', 'test[:8]'
  cfg.seg = ml_collections.ConfigDict()
  batch = next(data.make_train_iterator(cfg, 8, 0, num_local_devices=2))
  assert batch['image'].shape == (2, 4, 16, 16, 3) and batch['label'].size == 8 * 16 * 16
  assert data.iterate(data.make_train_iterator(cfg, 8, 0, num_local_devices=2), 3) == 24
  assert data.iterate(data.make_train_iterator(cfg, 8, 0), 2) == 16
  # A clock that advances 2 s between the two readings: 3 batches of 8 images -> 12 images/s
  # (counting label pixels gave 3·8·256 / 2 = 3072).
  clock = iter([10.0, 12.0])
  monkeypatch.setattr(pipeline.time, 'perf_counter', lambda: next(clock))
  assert data.measure_throughput(cfg, 8, 3, num_local_devices=2, warmup=1) == 12.0


# ---------------------------------------------------------------------------
# TFDS scene_parse150: R = Instance100 category, mapped to SceneParse150 ids.
# ---------------------------------------------------------------------------

# R values of the hand-built annotation and the SceneParse150 ids they stand for
# (ade20k_instance_catid_mapping.txt): 1 bed -> 8, 4 person -> 13, 5 door -> 15,
# 57 -> 89, 100 flag -> 150; 0 (no instance: stuff or unlabeled) -> 0.
_R = np.array([[0, 1, 4, 5], [57, 100, 0, 1], [4, 4, 100, 0]], np.uint8)
_SCENE_IDS = np.array([[0, 8, 13, 15], [89, 150, 0, 8], [13, 13, 150, 0]])


def _encode_png(array):
  buf = io.BytesIO()
  Image.fromarray(array).save(buf, format='PNG')
  return buf.getvalue()


def _annotation(r):
  """RGB annotation: R the category, G an instance id (must be ignored), B 0."""
  g = np.arange(r.size, dtype=np.uint8).reshape(r.shape) * 7 + 3
  return np.stack([r, g, np.zeros_like(r)], axis=-1)


def _one_example(r):
  def as_dataset(self, split, decoders=None, read_config=None, **kwargs):
    del self, split, decoders, read_config, kwargs
    image = np.full(r.shape + (3,), 128, np.uint8)
    return tf.data.Dataset.from_tensor_slices({'image': [_encode_png(image)],
                                               'annotation': [_encode_png(_annotation(r))]})
  return as_dataset


def _ade_cfg(reduce_zero_label):
  c = data.default_config()
  c.name, c.image_size, c.augment = 'scene_parse150', 4, 'none'
  c.train_split, c.eval_split = 'train', 'test'
  # Without reduce_zero_label, 0 ('other') is a class of its own: 151 classes.
  c.seg = ml_collections.ConfigDict(dict(reduce_zero_label=reduce_zero_label, eval_size=4,
                                         num_classes=150 if reduce_zero_label else 151))
  return c


def test_scene_parse150_labels_table():
  np.testing.assert_array_equal(seg_pipeline.scene_parse150_labels(_annotation(_R), 'ex'),
                                _SCENE_IDS)
  all_ids = seg_pipeline.scene_parse150_labels(np.arange(101, dtype=np.uint8), 'ex')
  assert all_ids[0] == 0 and len(set(all_ids[1:].tolist())) == 100
  assert all(0 < k <= 150 for k in all_ids[1:]) and list(all_ids[1:]) == sorted(all_ids[1:])
  with pytest.raises(ValueError, match=r'ex: annotation red-channel values \[101, 200\]'):
    seg_pipeline.scene_parse150_labels(np.array([[3, 101, 200]], np.uint8), 'ex')


@pytest.mark.parametrize('reduce_zero_label', [True, False])
def test_scene_parse150_through_tfds_reads_red_channel_and_reduces_zero(reduce_zero_label):
  # Padded to 4x4: the last row is padding (255) in eval, the 3x4 block the labels.
  expected = (np.where(_SCENE_IDS == 0, 255, _SCENE_IDS - 1) if reduce_zero_label
              else _SCENE_IDS)
  with tfds.testing.mock_data(policy=tfds.testing.MockPolicy.USE_CODE,
                              as_dataset_fn=_one_example(_R)):
    cfg = _ade_cfg(reduce_zero_label)
    assert data.get_info(cfg) == data.DatasetInfo(cfg.seg.num_classes, (4, 4, 3), 1, 1)
    (batch,) = list(data.make_eval_iterator(cfg, 1, 1))
    np.testing.assert_array_equal(batch['label'][0, 0, :3], expected)
    assert (batch['label'][0, 0, 3] == 255).all()
    train_batch = next(data.make_train_iterator(cfg, 1, 0))
    np.testing.assert_array_equal(train_batch['label'][0, 0, :3], expected)


def test_scene_parse150_bad_red_channel_names_the_example():
  bad = _R.copy()
  bad[0, 0] = 120
  with tfds.testing.mock_data(policy=tfds.testing.MockPolicy.USE_CODE,
                              as_dataset_fn=_one_example(bad)):
    with pytest.raises(ValueError, match=r'scene_parse150 test example 0: annotation red-channel '
                       r'values \[120\]'):
      list(data.make_eval_iterator(_ade_cfg(True), 1, 1))
