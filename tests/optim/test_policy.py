"""optim.policy and optim.layer_decay: per-path learning rates, no-decay masks, freezing and
layer-wise decay, against torch.optim parameter groups, optax's masked AdamW and the
BEiT/MAE formula on the parameter trees of every transformer family (scanned and unrolled)."""
from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch

import optim
from optim import layer_decay
from optim import policy
import vision
from tests.optim import helpers

STEPS = 6
DECAY = 0.75


def _params_of(name: str, size, **overrides):
  module = vision.create_model(name, **overrides)
  h, w = (size, size) if isinstance(size, int) else size
  variables = jax.eval_shape(lambda: module.init({'params': jax.random.PRNGKey(0)},
                                                 jnp.zeros((1, h, w, 3)), train=False))
  return variables['params']


# Small members of every family, and each family's layer id of a parameter, written
# out from its naming (block ids 1..L from the input, 0 embeddings, L+1 head).
VIT = dict(img_size=32, patch_size=8, embed_dim=48, depth=3, num_heads=3)
HYBRID = dict(img_size=35, hybrid_depths=(1, 1, 1), embed_dim=48, depth=2, num_heads=3)
SWIN = dict(img_size=26, patch_size=2, embed_dim=16, depths=(2, 3, 2), num_heads=(1, 2, 4),
            window_size=3)
PVT = dict(img_size=64, embed_dims=(16, 32, 48, 64), depths=(1, 2, 1, 2), num_heads=(1, 2, 3, 4))
MIT = dict(embed_dims=(16, 32, 40, 64), depths=(1, 2, 1, 2))


def _vit_id(path, total):
  m = re.match(r'blocks_(\d+)/', path)
  if m:
    return int(m.group(1)) + 1
  if path.split('/')[0] in ('patch_embed', 'pos_embed', 'cls_token', 'stem'):
    return 0
  assert path.split('/')[0] in ('head', 'norm'), path
  return total + 1


def _swin_id(path, total, depths=SWIN['depths']):
  m = re.match(r'layers_(\d+)_blocks_(\d+)/', path)
  if m:
    return sum(depths[:int(m.group(1))]) + int(m.group(2)) + 1
  m = re.match(r'layers_(\d+)_downsample/', path)
  if m:  # SimMIM: the downsample after stage s goes with that stage's last block
    return sum(depths[:int(m.group(1)) + 1])
  if path.startswith('patch_embed'):
    return 0
  assert path.split('/')[0] in ('head', 'norm'), path
  return total + 1


def _pvt_mit_id(path, total, depths):
  path = path[len('backbone/'):] if path.startswith('backbone/') else path
  m = re.match(r'block(\d)_(\d+)/', path)
  if m:
    return sum(depths[:int(m.group(1)) - 1]) + int(m.group(2)) + 1
  m = re.match(r'(?:patch_embed|pos_embed)(\d)', path)
  if m:  # stage k's embedding goes with the last block before stage k
    return sum(depths[:int(m.group(1)) - 1])
  m = re.match(r'norm(\d)/', path)
  if m:  # MiT's per-stage norm goes with the stage's last block
    return sum(depths[:int(m.group(1))])
  if path == 'cls_token':
    return 0
  assert path.split('/')[0] in ('head', 'norm', 'decode_head'), path
  return total + 1


FAMILIES = {
    'vit': ('vit_tiny_patch16_224', 32, VIT, 3, _vit_id),
    'hybrid': ('vit_base_r50_s16_224', 35, HYBRID, 2, _vit_id),
    'swin': ('swin_tiny_patch4_window7_224', 26, SWIN, 7, _swin_id),
    'pvt': ('pvt_tiny', 64, PVT, 6, lambda p, t: _pvt_mit_id(p, t, PVT['depths'])),
    'mit': ('mit_b0', 64, MIT, 6, lambda p, t: _pvt_mit_id(p, t, MIT['depths'])),
    'segformer': ('segformer_b0', 64, dict(MIT, decoder_dim=24), 6,
                  lambda p, t: _pvt_mit_id(p, t, MIT['depths'])),
}


def _unstacked_path(path: str, row: int) -> str:
  """The unrolled name of row `row` of a scanned stack ('blocks/x' -> 'blocks_2/x')."""
  first, rest = path.split('/', 1)
  if first == 'backbone':
    return 'backbone/' + _unstacked_path(rest, row)
  return f'{first}_{row}/{rest}'


@pytest.mark.parametrize('family', FAMILIES)
def test_layer_decay_multipliers_equal_the_formula_unrolled_and_scanned(family):
  name, size, overrides, total, layer_of = FAMILIES[family]
  unrolled = _params_of(name, size, **overrides)
  assert layer_decay.num_layers(unrolled) == total
  factors = dict(zip(policy.leaf_paths(unrolled), jax.tree.leaves(
      layer_decay.layer_decay_multipliers(unrolled, DECAY))))
  ids = {p: layer_of(p, total) for p in factors}
  for path, m in factors.items():
    assert m == DECAY ** (total + 1 - ids[path]), path
  assert set(ids.values()) == set(range(total + 2))

  scanned = _params_of(name, size, scan_blocks=True, **overrides)
  assert layer_decay.num_layers(scanned) == total
  stacked = 0
  for (path, leaf), m in zip(jax.tree_util.tree_flatten_with_path(scanned)[0],
                             jax.tree.leaves(layer_decay.layer_decay_multipliers(scanned, DECAY))):
    path = policy.path_name(path)
    if path in factors:  # not a stacked block: the same factor as unrolled
      assert m == factors[path], path
      continue
    stacked += 1
    assert isinstance(m, np.ndarray) and m.shape == (leaf.shape[0],), path
    np.testing.assert_array_equal(m, [factors[_unstacked_path(path, j)]
                                      for j in range(leaf.shape[0])], err_msg=path)
  assert stacked > 0


def test_layer_decay_update_broadcasts_along_the_stacked_axis():
  """Through a transform, a scanned ViT's stacked block update row j is the unrolled block j's."""
  params = {}
  for scan in (False, True):
    shapes = _params_of('vit_tiny_patch16_224', 32, scan_blocks=scan, **VIT)
    params[scan] = jax.tree.map(lambda s: jnp.ones(s.shape, jnp.float32), shapes)
  tx = optax.chain(optim.sgd(1.0), layer_decay.scale_by_layer_decay(DECAY))
  out = {scan: tx.update(jax.tree.map(jnp.ones_like, p), tx.init(p), p)[0]
         for scan, p in params.items()}
  for j in range(VIT['depth']):
    np.testing.assert_array_equal(out[True]['blocks']['mlp']['fc1']['kernel'][j],
                                  out[False][f'blocks_{j}']['mlp']['fc1']['kernel'])
    np.testing.assert_allclose(out[False][f'blocks_{j}']['attn']['qkv']['bias'],
                               -np.float32(DECAY ** (VIT['depth'] - j)))
  np.testing.assert_array_equal(out[True]['head']['kernel'], -1.0)
  np.testing.assert_allclose(out[True]['pos_embed'], -np.float32(DECAY ** (VIT['depth'] + 1)))


def test_layer_decay_rejects_unknown_paths_and_bad_decays():
  with pytest.raises(ValueError, match=r"cannot tell the layer of parameter 'dense/kernel'"):
    layer_decay.layer_ids({'dense': {'kernel': np.zeros((2, 2))}, 'blocks_0': {'w': 0.0}})
  with pytest.raises(ValueError, match='needs a model with transformer blocks'):
    layer_decay.layer_ids({'head': {'kernel': np.zeros((2, 2))}})
  for bad in (0.0, 1.5, True, 'x'):
    with pytest.raises(ValueError, match=r'optimizer.layer_decay=.*must be a number in \(0, 1\]'):
      layer_decay.scale_by_layer_decay(bad)


def test_lr_multipliers_longest_pattern_wins_and_errors_name_the_key():
  params = helpers.init_params()
  factors = policy.lr_multipliers(params, {'dense': 10.0, 'dense/bias': 0.5, '^sc': 0.0})
  assert factors == {'conv': {'kernel': 1.0}, 'dense': {'bias': 0.5, 'kernel': 10.0},
                     'scale': 0.0}
  with pytest.raises(ValueError, match=r"optimizer.lr_mult\['dense'\]=-1; must be a number >= 0"):
    policy.lr_multipliers(params, {'dense': -1})
  with pytest.raises(ValueError, match=r"pattern '\(dense' is not a regular expression"):
    policy.lr_multipliers(params, {'(dense': 2.0})
  with pytest.raises(ValueError, match=r"optimizer.lr_mult pattern\(s\) \['decoder'\] match no "
                     r'parameter.*top-level parameter names: conv, dense, scale'):
    policy.lr_multipliers(params, {'decoder': 2.0})


def _torch_groups(make, lr_of_leaf):
  """torch optimizer over one parameter group per leaf, with the leaf's learning rate."""
  return lambda ps: make([{'params': [p], 'lr': lr} for p, lr in zip(ps, lr_of_leaf)])


@pytest.mark.parametrize('name,ours,theirs', [
    ('momentum', dict(learning_rate=0.05, momentum=0.9, nesterov=True),
     lambda groups: torch.optim.SGD(groups, momentum=0.9, nesterov=True, foreach=False)),
    ('adamw', dict(learning_rate=0.01, weight_decay=0.1),
     lambda groups: torch.optim.AdamW(groups, weight_decay=0.1, foreach=False)),
])
def test_lr_mult_equals_torch_parameter_groups(name, ours, theirs):
  lr_mult = {'dense': 10.0, 'dense/bias': 0.5, 'scale': 0.0}
  with helpers.x64():
    params = helpers.init_params(np.float64)
    grads = helpers.grad_sequence(STEPS, np.float64)
    tx = policy.scale_lr_by_path(optim.create(name, **ours), lr_mult)
    got = helpers.run(tx, params, grads)
  lrs = [ours['learning_rate'] * m
         for m in jax.tree.leaves(policy.lr_multipliers(params, lr_mult))]
  want = helpers.run_torch(_torch_groups(theirs, lrs), params, grads)
  assert helpers.max_rel_error(got, want) < 1e-12
  np.testing.assert_array_equal(got['scale'], np.broadcast_to(params['scale'], (STEPS,)))
  assert np.max(np.abs(got['dense']['kernel'][-1] - params['dense']['kernel'])) > 1e-2


def test_no_decay_mask_equals_adamw_with_the_same_explicit_mask():
  patterns = ('bias', '^scale')
  with helpers.x64():
    params = helpers.init_params(np.float64)
    grads = helpers.grad_sequence(STEPS, np.float64)
    mask = {'conv': {'kernel': True}, 'dense': {'bias': False, 'kernel': True}, 'scale': False}
    assert policy.no_decay_mask(patterns)(params) == mask
    out = helpers.run_many({
        'ours': optim.adamw(0.01, weight_decay=0.5, mask=policy.no_decay_mask(patterns)),
        'explicit': optim.adamw(0.01, weight_decay=0.5, mask=mask),
        'optax': optax.adamw(0.01, eps=1e-8, weight_decay=0.5, mask=mask),
        'none': optim.adamw(0.01, weight_decay=0.5)}, params, grads)
  for leaf_a, leaf_b in zip(jax.tree.leaves(out['ours']), jax.tree.leaves(out['explicit'])):
    np.testing.assert_array_equal(leaf_a, leaf_b)
  assert helpers.max_rel_error(out['ours'], out['optax']) < 1e-12
  # The exemption is real: the decayed run differs on the masked leaves only.
  assert not np.allclose(out['none']['dense']['bias'], out['ours']['dense']['bias'])
  np.testing.assert_array_equal(out['none']['conv']['kernel'], out['ours']['conv']['kernel'])
  with pytest.raises(ValueError, match=r"optimizer.no_decay pattern\(s\) \['decoder'\]"):
    policy.no_decay_mask(['decoder'])(params)
  with pytest.raises(ValueError, match='must be a list of path patterns'):
    policy.no_decay_mask('bias')


def test_frozen_params_stay_bit_identical_and_the_rest_trains_as_without_them():
  patterns = ('^dense/', 'scale')
  params = helpers.init_params(np.float32)
  grads = helpers.grad_sequence(STEPS, np.float32)
  inner = optax.chain(optim.clip_by_global_norm(1.0), optim.adamw(0.05, weight_decay=0.1))
  tx = policy.freeze(inner, patterns)
  assert policy.frozen_paths(params, patterns) == ['dense/bias', 'dense/kernel', 'scale']
  got = helpers.run(tx, params, grads)
  for t in range(STEPS):
    for path in ('bias', 'kernel'):
      assert got['dense'][path][t].tobytes() == params['dense'][path].tobytes()
    assert got['scale'][t].tobytes() == np.asarray(params['scale']).tobytes()
  # The trainable leaf follows the optimizer run on it alone (clipping sees only it).
  alone = helpers.run(inner, {'conv': params['conv']}, {'conv': grads['conv']})
  np.testing.assert_array_equal(got['conv']['kernel'], alone['conv']['kernel'])
  assert np.max(np.abs(got['conv']['kernel'][-1] - params['conv']['kernel'])) > 1e-2
  # No optimizer state is kept for the frozen leaves.
  state_leaves = jax.tree.leaves(tx.init(params))
  assert sum(np.size(x) for x in state_leaves) < 3 * np.size(params['conv']['kernel']) + 8


def test_linear_probe_pattern_freezes_everything_but_the_head():
  shapes = _params_of('vit_tiny_patch16_224', 32, **VIT)
  frozen = set(policy.frozen_paths(shapes, ['^(?!head/)']))
  paths = set(policy.leaf_paths(shapes))
  assert paths - frozen == {'head/bias', 'head/kernel'}
  with pytest.raises(ValueError, match=r"optimizer.freeze pattern\(s\) \['decoder'\] match no"):
    policy.frozen_mask(shapes, ['decoder'])
