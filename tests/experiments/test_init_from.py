"""`config.init_from`: every kind of path, head modes, dont_load, resizing, misfits.

Oracle: a random HuggingFace `ViTForImageClassification`; whatever path kind
carries its weights (safetensors file, `save_pretrained` directory, the
huggingface_hub cache read offline, timm and Google namings, a visopt
workdir written by `experiments.checkpointing`), the loaded model's logits
must equal HF's.
"""
from __future__ import annotations

import os

import huggingface_hub
import jax
import ml_collections
import numpy as np
import pytest
import torch
from safetensors.numpy import save_file

import vision
from experiments import checkpointing
from experiments import init_from
from experiments import train
from tests.vision import test_pretrained_npz as npz_helpers
from tests.vision import test_resize as resize_helpers
from tests.vision import test_vit as vit_helpers

TOL = 1e-4
SMALL = dict(img_size=32, patch_size=8, embed_dim=48, depth=2, num_heads=3, num_classes=5)


def _cfg(path: str, **kw) -> ml_collections.ConfigDict:
  cfg = init_from.default_config()
  cfg.path = path
  cfg.update(kw)
  return cfg


def _model(**kw):
  module = vision.create_model('vit_tiny_patch16_224', **{**SMALL, 'norm_eps': 1e-12, **kw})
  size = module.img_size if isinstance(module.img_size, tuple) else (module.img_size,) * 2
  x = np.zeros((1, *size, 3), np.float32)
  fresh = jax.device_get(jax.jit(module.init)(jax.random.PRNGKey(0), x))
  return module, fresh


def _logits(module, variables, x: torch.Tensor) -> np.ndarray:
  return np.asarray(jax.jit(lambda v, x: module.apply(v, x))(variables,
                                                            x.permute(0, 2, 3, 1).numpy()))


def _flat(tree) -> dict:
  return vision.pretrained.flatten(tree)


@pytest.fixture(scope='module')
def hf(tmp_path_factory):
  model = resize_helpers.hf_vit_model()
  root = tmp_path_factory.mktemp('init_from')
  state = resize_helpers.state_dict(model)
  path = str(root / 'vit.safetensors')
  save_file(state, path)
  model.save_pretrained(str(root / 'hf_dir'))
  x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
  with torch.no_grad():
    logits = model(x).logits.numpy()
  return dict(model=model, state=state, path=path, root=root, x=x, logits=logits)


def _check(hf, path, **module_kw):
  module, fresh = _model(**module_kw)
  variables = init_from.load(_cfg(path), module, fresh)
  jax.tree.map(lambda a, b: np.testing.assert_equal((a.shape, a.dtype), (b.shape, b.dtype)),
               variables, fresh)
  np.testing.assert_allclose(_logits(module, variables, hf['x']), hf['logits'], atol=TOL, rtol=0)
  return module, variables


def test_safetensors_file(hf):
  _check(hf, hf['path'])


def test_hf_model_directory(hf):
  assert {'config.json', 'model.safetensors'} <= set(os.listdir(hf['root'] / 'hf_dir'))
  _check(hf, str(hf['root'] / 'hf_dir'))


def test_hf_hub_cache_offline(hf, tmp_path, monkeypatch):
  """hf://ORG/NAME from a cache laid out as huggingface_hub lays it out, offline."""
  commit = 'a' * 40
  repo = tmp_path / 'hub' / 'models--visopt--tiny-vit'
  snapshot = repo / 'snapshots' / commit
  snapshot.mkdir(parents=True)
  for name in ('config.json', 'model.safetensors'):
    os.symlink(hf['root'] / 'hf_dir' / name, snapshot / name)
  (repo / 'refs').mkdir()
  (repo / 'refs' / 'main').write_text(commit)
  monkeypatch.setenv('HF_HUB_OFFLINE', '1')
  monkeypatch.setenv('HF_HOME', str(tmp_path))
  monkeypatch.setattr(huggingface_hub.constants, 'HF_HUB_CACHE', str(tmp_path / 'hub'))
  monkeypatch.setattr(huggingface_hub.constants, 'HF_HUB_OFFLINE', True)
  _check(hf, 'hf://visopt/tiny-vit')
  with pytest.raises(ValueError, match='not in the huggingface_hub cache'):
    init_from.load(_cfg('hf://visopt/absent'), *_model())


def test_timm_and_google_namings(hf, tmp_path):
  timm = str(tmp_path / 'timm.safetensors')
  save_file(vit_helpers.to_timm(hf['state'], depth=2), timm)
  _check(hf, timm, norm_eps=1e-12)
  google = npz_helpers.to_google(hf['state'], 'vit.')
  google['head/kernel'] = hf['state']['classifier.weight'].T
  google['head/bias'] = hf['state']['classifier.bias']
  npz = str(tmp_path / 'vit.npz')
  np.savez(npz, **google)
  _check(hf, npz)


def _write_workdir(workdir: str, steps: dict[int, dict]) -> None:
  ckpt = checkpointing.Checkpointer(workdir)
  for step, variables in steps.items():
    variables = dict(variables)
    params = variables.pop('params')
    ckpt.save(step, train.TrainState(np.int32(step), params, {'mu': params}, variables))
  ckpt.close()


def test_visopt_workdir_latest_and_step(hf, tmp_path):
  """Latest checkpoint by default, WORKDIR:STEP for another; written scanned, read unrolled."""
  _, loaded = _check(hf, hf['path'])
  scanned_module, scanned_fresh = _model(scan_blocks=True)
  scanned = init_from.load(_cfg(hf['path']), scanned_module, scanned_fresh)
  perturbed = jax.tree.map(lambda a: a + 1.0, scanned)
  workdir = str(tmp_path / 'run')
  _write_workdir(workdir, {10: perturbed, 20: scanned})
  assert init_from.workdir_steps(workdir) == [10, 20]
  _check(hf, workdir)
  module, fresh = _model()
  at_10 = init_from.load(_cfg(f'{workdir}:10'), module, fresh)
  np.testing.assert_allclose(at_10['params']['blocks_1']['mlp']['fc1']['kernel'],
                             loaded['params']['blocks_1']['mlp']['fc1']['kernel'] + 1.0, rtol=1e-6)
  with pytest.raises(ValueError, match=r'no checkpoint at step 15; steps: 10, 20'):
    init_from.load(_cfg(f'{workdir}:15'), module, fresh)


def test_head_modes_and_dont_load(hf):
  module, fresh = _model(num_classes=3)
  variables = init_from.load(_cfg(hf['path']), module, fresh)  # 'auto': 5 → 3 classes
  assert variables['params']['head']['kernel'].shape == (48, 3)
  assert not np.any(variables['params']['head']['kernel'])
  assert not np.any(variables['params']['head']['bias'])
  with pytest.raises(ValueError) as err:
    init_from.load(_cfg(hf['path'], head='keep'), module, fresh)
  assert 'params/head/kernel: checkpoint (48, 5) vs model (48, 3)' in str(err.value)
  assert '\n' not in str(err.value)
  module, fresh = _model()
  kept = init_from.load(_cfg(hf['path']), module, fresh)  # 'auto', same classes: kept
  np.testing.assert_array_equal(kept['params']['head']['bias'], hf['state']['classifier.bias'])
  zeroed = init_from.load(_cfg(hf['path'], head='reinit'), module, fresh)
  assert not np.any(zeroed['params']['head']['kernel'])
  partial = init_from.load(_cfg(hf['path'], dont_load=('blocks_1/.*', 'pos_embed')), module,
                           fresh)
  got, init, full = _flat(partial), _flat(fresh), _flat(kept)
  for key in got:
    source = init if (key.startswith('params/blocks_1/') or key == 'params/pos_embed') else full
    np.testing.assert_array_equal(got[key], source[key], err_msg=key)


def test_new_resolution_resizes_like_hf(hf):
  x = torch.randn(2, 3, 48, 40, generator=torch.Generator().manual_seed(2))
  with torch.no_grad():
    want = hf['model'](x, interpolate_pos_encoding=True).logits.numpy()
  module, fresh = _model(img_size=(48, 40))
  variables = init_from.load(_cfg(hf['path']), module, fresh)
  np.testing.assert_allclose(_logits(module, variables, x), want, atol=TOL, rtol=0)


def test_misfit_and_bad_paths_raise_one_line(hf, tmp_path):
  module, fresh = _model(depth=3, embed_dim=24)
  with pytest.raises(ValueError) as err:
    init_from.load(_cfg(hf['path']), module, fresh)
  msg = str(err.value)
  assert '\n' not in msg and msg.startswith('Checkpoint does not fit the model: missing (')
  assert 'params/blocks_2/norm1/scale' in msg and 'mis-shaped (' in msg
  module, fresh = _model()
  pickled = tmp_path / 'pytorch_model.bin'
  pickled.write_bytes(b'not read')
  cases = [(str(tmp_path / 'absent.safetensors'), 'does not exist'),
           (str(pickled), 'never unpickled'),
           (str(tmp_path), 'neither a visopt workdir nor a HuggingFace model directory'),
           ('hf://no-org-name', 'expected hf://ORG/NAME')]
  for path, match in cases:
    with pytest.raises(ValueError, match=match):
      init_from.load(_cfg(path), module, fresh)
  for bad, match in ((dict(head='drop'), 'head'), (dict(dont_load=('(',)), 'not a regex')):
    with pytest.raises(ValueError, match=match):
      init_from.load(_cfg(hf['path'], **bad), module, fresh)


def test_mit_workdir_initialises_segformer_encoder(tmp_path):
  """A visopt MiT classifier run → SegFormer: encoder from the workdir, decoder fresh."""
  small = dict(embed_dims=(16, 32, 40, 64), depths=(1, 1, 1, 1), img_size=64)
  x = np.zeros((1, 64, 64, 3), np.float32)
  mit = vision.create_model('mit_b0', num_classes=10, **small)
  source = jax.device_get(jax.jit(mit.init)(jax.random.PRNGKey(1), x))
  workdir = str(tmp_path / 'mit_run')
  _write_workdir(workdir, {7: source})
  seg = vision.create_model('segformer_b0', num_classes=4, decoder_dim=24, **small)
  fresh = jax.device_get(jax.jit(seg.init)(jax.random.PRNGKey(2), x))
  variables = init_from.load(_cfg(workdir), seg, fresh)
  got, init = _flat(variables), _flat(fresh)
  encoder = {k: v for k, v in _flat(source).items() if not k.startswith('params/head/')}
  assert {k.replace('/backbone/', '/', 1) for k in got if '/backbone/' in k} == set(encoder)
  for key, value in got.items():
    want = init[key] if key.split('/')[1] == 'decode_head' else encoder[
        key.replace('/backbone/', '/', 1)]
    np.testing.assert_array_equal(value, want, err_msg=key)
