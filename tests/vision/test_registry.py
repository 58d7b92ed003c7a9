"""The registry: every registered model has a parameter-count test; name/override errors.

Each `tests/vision/test_<family>.py` declares a module-level
`EXPECTED_PARAMS = {registered name: exact count}` and checks it; this file
unions those dicts and fails when a registered model is missing from all of
them (the vit_jax `models_test.py` rule: no untested model).
"""
from __future__ import annotations

import importlib
import pathlib

import jax
import jax.numpy as jnp
import pytest

import vision
from vision import spec

_HERE = pathlib.Path(__file__).parent


def _test_modules() -> list[str]:
  return sorted(f'tests.vision.{p.stem}' for p in _HERE.glob('test_*.py')
                if p.stem != 'test_registry')


def _expected_params() -> dict[str, tuple[int, str]]:
  """{name: (count, declaring module)}; a name declared twice with two counts is an error."""
  merged: dict[str, tuple[int, str]] = {}
  for module_name in _test_modules():
    declared = getattr(importlib.import_module(module_name), 'EXPECTED_PARAMS', {})
    for name, count in declared.items():
      if name in merged and merged[name][0] != count:
        raise AssertionError(f'{name}: {merged[name][1]} expects {merged[name][0]} params, '
                             f'{module_name} expects {count}.')
      merged[name] = (count, module_name)
  return merged


def test_every_registered_model_has_an_expected_param_count():
  expected = _expected_params()
  untested = sorted(set(vision.list_models()) - set(expected))
  assert not untested, (
      f'Registered models without an EXPECTED_PARAMS entry in tests/vision/test_*.py: {untested}')


def test_no_expected_count_for_an_unregistered_name():
  stale = sorted(set(_expected_params()) - set(vision.list_models()))
  assert not stale, f'EXPECTED_PARAMS names that are not registered: {stale}'


def test_list_models_is_sorted_and_has_the_design_names():
  names = vision.list_models()
  assert names == sorted(names)
  for name in ('linear_classifier', 'mlp', 'convnet', 'vit_tiny_patch16_224',
               'vit_small_patch16_224', 'vit_base_patch16_224', 'vit_base_patch32_224',
               'vit_large_patch16_224', 'vit_base_r50_s16_224'):
    assert name in names


def test_every_entry_is_a_model_def_with_common_overrides():
  for name in vision.list_models():
    entry = vision.get_model_def(name)
    assert isinstance(entry, spec.ModelDef)
    assert entry.task in ('classification', 'segmentation')
    fields = {f for f in entry.cls.__dataclass_fields__}
    missing = set(spec.COMMON_OVERRIDES) - fields
    assert not missing, f'{name} lacks the common overrides {sorted(missing)}'


def test_unknown_name_lists_close_matches():
  with pytest.raises(ValueError) as err:
    vision.create_model('vit_smal_patch16_224')
  msg = str(err.value)
  assert "Unknown model name 'vit_smal_patch16_224'" in msg
  assert 'Did you mean: vit_small_patch16_224' in msg


def test_unknown_override_lists_valid_ones():
  with pytest.raises(ValueError) as err:
    vision.create_model('vit_tiny_patch16_224', patchsize=8)
  msg = str(err.value)
  assert "Unknown override(s) ['patchsize']" in msg and 'patch_size' in msg and 'num_classes' in msg


def test_overrides_reach_the_module():
  module = vision.create_model('vit_tiny_patch16_224', num_classes=10, img_size=32, in_chans=1,
                               patch_size=8, drop_path_rate=0.1)
  assert (module.num_classes, module.img_size, module.in_chans, module.patch_size,
          module.embed_dim) == (10, 32, 1, 8, 192)


def test_validate_runs_inside_create_model():
  with pytest.raises(ValueError, match='does not tile'):
    vision.create_model('convnet', img_size=9)


# One small configuration per family (the registered names' own defaults otherwise).
_SMALL = {
    'baseline': ('mlp', {}),
    'vit': ('vit_tiny_patch16_224', dict(embed_dim=16, depth=1, num_heads=2, img_size=32)),
    'vit_hybrid': ('vit_base_r50_s16_224', dict(embed_dim=16, depth=1, num_heads=2, img_size=32,
                                                hybrid_depths=(1, 1, 1))),
    'swin': ('swin_tiny_patch4_window7_224', dict(embed_dim=8, depths=(1, 1), num_heads=(1, 1),
                                                  window_size=4, img_size=32)),
    'pvt': ('pvt_tiny', dict(embed_dims=(8, 8, 8, 8), depths=(1, 1, 1, 1),
                             num_heads=(1, 1, 1, 1), img_size=64)),
    'mit': ('mit_b0', dict(embed_dims=(8, 8, 8, 8), depths=(1, 1, 1, 1),
                           num_heads=(1, 1, 1, 1), img_size=64)),
    'segformer': ('segformer_b0', dict(embed_dims=(8, 8, 8, 8), depths=(1, 1, 1, 1),
                                       num_heads=(1, 1, 1, 1), img_size=64, decoder_dim=8)),
}


def test_every_family_has_a_small_configuration():
  families = {vision.get_model_def(n).family for n in vision.list_models()}
  assert families == set(_SMALL)


@pytest.mark.parametrize('family', sorted(_SMALL))
def test_bfloat16_compute_returns_float32_logits(family):
  name, overrides = _SMALL[family]
  module = vision.create_model(name, dtype=jnp.bfloat16, **overrides)
  size = module.img_size if isinstance(module.img_size, int) else module.img_size[0]
  x = jax.ShapeDtypeStruct((2, size, size, module.in_chans), jnp.float32)
  shapes = jax.eval_shape(lambda x: module.init(jax.random.PRNGKey(0), x), x)
  assert {p.dtype for p in jax.tree.leaves(shapes['params'])} == {jnp.dtype(jnp.float32)}
  logits = jax.eval_shape(lambda v, x: module.apply(v, x), shapes, x)
  assert logits.dtype == jnp.float32
