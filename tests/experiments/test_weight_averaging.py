"""The ema/polyak config sections: transforms built from them, eval weight sets, bad values."""
from __future__ import annotations

import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

import optim
from experiments import weight_averaging as wa


def _config(decay=None, start=None, **ema):
  c = ml_collections.ConfigDict()
  c.ema = wa.ema_config()
  c.polyak = wa.polyak_config()
  c.ema.decay = decay
  c.polyak.start_step = start
  for k, v in ema.items():
    c.ema[k] = v
  return c


def test_off_by_default_and_absent_sections_are_off():
  assert wa.transforms(_config()) == []
  assert wa.transforms(ml_collections.ConfigDict()) == []


def test_eval_params_names_each_average():
  params = {'w': jnp.ones(3)}
  tx = optax.chain(optim.sgd(0.1), *wa.transforms(_config(decay=0.9, start=2, warmup=True)))
  state = tx.init(params)
  for _ in range(4):
    updates, state = tx.update({'w': jnp.ones(3)}, state, params)
    params = optax.apply_updates(params, updates)
  sets = wa.eval_params(params, state)
  assert list(sets) == ['val', 'val_ema', 'val_polyak']
  np.testing.assert_allclose(sets['val']['w'], 0.6, rtol=1e-6)
  np.testing.assert_allclose(sets['val_polyak']['w'], np.mean([0.8, 0.7, 0.6]), rtol=1e-6)


@pytest.mark.parametrize('config,msg', [
    (_config(decay=1.5), 'ema'), (_config(decay=-0.1), 'ema'),
    (_config(decay=0.9, warmup=True, warmup_power=0.0), 'ema'),
    (_config(start=-1), 'polyak'),
])
def test_bad_values_raise_one_line(config, msg):
  with pytest.raises(ValueError, match=msg) as e:
    wa.transforms(config)
  assert '\n' not in str(e.value)
