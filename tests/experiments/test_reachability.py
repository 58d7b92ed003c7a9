"""Every knob is reachable from the command line: each constructor field of every registered
model, each hyper-parameter of every optimizer and each keyword of every schedule parses from
`--config.<key>=value` with its type (parse only; nothing trains)."""
from __future__ import annotations

import dataclasses
import os

from absl import flags
import ml_collections
import optim
import pytest

import vision
from experiments import config_cli
from experiments import config_schema
from experiments import main
from experiments.sweeps import space
from experiments.sweeps import spec as spec_lib

BASE = 'experiments/configs/digits_baselines.py:model=softmax'
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(autouse=True)
def _in_root(monkeypatch):
  monkeypatch.chdir(ROOT)


def _value(name: str, knob: config_schema.Knob):
  """A value of the knob's type that differs from its default where possible."""
  d = knob.default
  if knob.type is bool:
    return not d if isinstance(d, bool) else True
  if knob.type is int:
    return d + 1 if isinstance(d, int) else 3
  if knob.type is float:
    return 0.25 if d != 0.25 else 0.5
  if knob.type is str:
    return {'linesearch': 'backtracking', 'amsgrad_max': 'corrected', 'backbone': 'mit_b1',
            'axis_name': 'batch'}.get(name, (d + '_x') if isinstance(d, str) else 'x')
  if knob.type is tuple:
    if isinstance(d, tuple) and d:
      return tuple(v + 1 for v in d)
    return ('head',) if name in ('no_decay', 'freeze') else (2, 3)
  assert knob.type is object, (name, knob)
  return {'head': 10.0} if name == 'lr_mult' else (48, 64)


def _arg(key: str, value) -> str:
  if isinstance(value, tuple):
    return f'--config.{key}={value!r}'
  if isinstance(value, dict):
    return f'--config.{key}={value!r}'
  return f'--config.{key}={value}'


def _parse(*args: str) -> ml_collections.ConfigDict:
  return config_cli.parse(['main', f'--config={BASE}', *args]).config


def _fields(cls) -> set[str]:
  return {f.name for f in dataclasses.fields(cls) if f.init and f.name not in ('parent', 'name')}


@pytest.mark.parametrize('model', vision.list_models())
def test_every_model_field_is_reachable(model):
  knobs = config_schema.model_knobs(model)
  # Every constructor field is a knob, or set from the top-level key named for it.
  fields = _fields(vision.get_model_def(model).cls)
  derived = fields & set(config_schema.DERIVED_MODEL_FIELDS)
  assert fields == set(knobs) | derived
  for field in derived:
    assert config_schema.DERIVED_MODEL_FIELDS[field] in _parse()
  values = {name: _value(name, knob) for name, knob in knobs.items()}
  config = _parse(f'--config.model.name={model}',
                  *(_arg(f'model.overrides.{k}', v) for k, v in values.items()))
  for name, value in values.items():
    got = config.model.overrides[name]
    assert got == value and type(got) is type(value), (model, name, got, value)


@pytest.mark.parametrize('model', ['vit', 'swin_tiny_patch4_window7_224', 'mlp'])
def test_a_field_of_the_wrong_type_is_refused(model):
  field = {'vit': 'depth', 'swin_tiny_patch4_window7_224': 'window_size', 'mlp': 'width'}[model]
  with pytest.raises(flags.IllegalFlagValueError, match=field):
    _parse(f'--config.model.name={model}', f'--config.model.overrides.{field}=two')


def test_unknown_field_names_the_valid_fields():
  with pytest.raises(ValueError) as e:
    _parse('--config.model.name=mlp', '--config.model.overrides.batch_norm=True')
  message = str(e.value)
  assert "model 'mlp' has no field 'batch_norm'" in message and '\n' not in message
  for field in config_schema.model_knobs('mlp'):
    assert field in message


@pytest.mark.parametrize('name', optim.registry.names())
def test_every_optimizer_hyperparameter_is_reachable(name):
  knobs = config_schema.optimizer_knobs(name)
  import inspect  # pylint: disable=g-import-not-at-top
  params = inspect.signature(optim.registry.optimizers()[name]).parameters
  # Every factory argument is a knob, or driven by the schedule (learning_rate) or by
  # optimizer.no_decay (mask).
  assert set(params) - {'learning_rate', 'mask'} <= set(knobs)
  values = {k: _value(k, knob) for k, knob in knobs.items()}
  config = _parse(f'--config.optimizer.name={name}', '--config.optimizer.learning_rate=0.3',
                  *(_arg(f'optimizer.{k}', v) for k, v in values.items()))
  assert config.optimizer.learning_rate == 0.3
  for key, value in values.items():
    got = config.optimizer[key]
    assert got == value and type(got) is type(value), (name, key, got, value)


@pytest.mark.parametrize('name', optim.schedules.NAMES)
def test_every_schedule_keyword_is_reachable(name):
  knobs = config_schema.schedule_knobs(name)
  values = {k: _value(k, knob) for k, knob in knobs.items()}
  config = _parse(f'--config.schedule.name={name}',
                  *(_arg(f'schedule.{k}', v) for k, v in values.items()))
  for key, value in values.items():
    assert config.schedule[key] == value, (name, key)
  # The keywords are exactly those optim.schedules.create accepts for the name.
  settled = config_schema.settle(config)
  kwargs = {k: v for k, v in settled.schedule.items()
            if k not in config_schema.SCHEDULE_COMMON_KEYS}
  optim.schedules.create(name, init_value=0.1, total_steps=100, warmup_steps=1, **kwargs)
  with pytest.raises(ValueError, match='unknown keyword'):
    optim.schedules.create(name, init_value=0.1, total_steps=100, warmup_steps=1,
                           **kwargs, not_a_keyword=1.0)


def test_linesearch_choice_reaches_second_order_optimizers():
  from experiments import config_validation  # pylint: disable=g-import-not-at-top
  config = config_cli.parse(['main', '--config=experiments/configs/lbfgs_digits.py',
                             '--config.optimizer.linesearch=backtracking']).config
  assert config.optimizer.linesearch == 'backtracking'
  settled = config_schema.settle(config)
  config_validation.check_schema(settled)
  settled.optimizer.linesearch = 'nope'
  with pytest.raises(ValueError, match="optimizer.linesearch='nope'; valid: one of "):
    config_validation.check_schema(settled)


def test_base_batch_size_scales_the_learning_rate():
  config = config_schema.settle(_parse('--config.optimizer.learning_rate=0.1',
                                       '--config.optimizer.base_batch_size=256',
                                       '--config.batch_size=64'))
  assert config.optimizer.base_batch_size == 256  # config.json keeps what was given
  built = config_schema.scale_learning_rate(config)
  assert built.optimizer.learning_rate == pytest.approx(0.1 * 64 / 256)
  assert 'base_batch_size' not in built.optimizer
  with pytest.raises(ValueError, match='full_batch'):
    config.full_batch = True
    config_schema.scale_learning_rate(config)


def test_unset_knobs_are_not_passed_and_set_ones_are():
  config = config_schema.settle(_parse('--config.model.name=mlp',
                                       '--config.model.overrides.batchnorm=True'))
  assert config.model.overrides.to_dict() == {'batchnorm': True, 'weight_init': 'small'}
  assert set(config.optimizer) == {'name', 'learning_rate', 'momentum'}


def test_resume_compares_equal(tmp_path, capsys):
  """The config saved by a run and the one the same command parses again are equal."""
  from experiments import config_validation  # pylint: disable=g-import-not-at-top
  args = ['main', f'--config={BASE}', f'--workdir={tmp_path / "run"}',
          '--config.optimizer.nesterov=True', '--config.model.overrides.weight_init=he']
  saved, _, workdir, resume, _ = main.prepare(args)
  assert not resume
  os.makedirs(workdir)
  config_validation.write_config(workdir, saved)
  again, _, _, resume, _ = main.prepare(args)
  assert resume and config_validation.canonical(again) == config_validation.canonical(saved)


def test_a_sweep_can_set_any_knob(tmp_path):
  config = _parse('--config.optimizer.name=adam')
  config = config_schema.settle(config)  # as a config file gives it: b1, eps unset
  config.sweep = ml_collections.ConfigDict(dict(
      method='grid', grid_points=2, metric='val/accuracy',
      parameters=dict(b1=space.uniform('optimizer.b1', 0.8, 0.95),
                      init=space.choice('model.overrides.weight_init', ['he', 'xavier']),
                      end=space.uniform('schedule.end_value', 0.0, 0.01))))
  config.schedule.name = 'cosine'
  sweep = spec_lib.parse_sweep(config)
  assert {p.path for p in sweep.params} == {'optimizer.b1', 'model.overrides.weight_init',
                                            'schedule.end_value'}
  with pytest.raises(ValueError, match="no key 'nope'|has no 'nope'|nope"):
    config.sweep.parameters.bad = space.uniform('optimizer.nope', 0.1, 0.2)
    spec_lib.parse_sweep(config)


def test_help_lists_every_knob_with_its_default(capsys):
  with pytest.raises(SystemExit) as e:
    main.parse_flags(['main', f'--config={BASE}', '--config.model.name=mlp', '--help'])
  assert e.value.code == 0
  out = capsys.readouterr().out
  for name, knob in config_schema.model_knobs('mlp').items():
    assert f'model.overrides.{name}' in out
  assert 'model.overrides.batchnorm  (unset: False)' in out
  assert 'model.overrides.num_classes  (unset: from the data)' in out
  assert "optimizer.name = 'sgd'" in out and 'optimizer.nesterov  (unset: False)' in out


def test_a_new_name_drops_the_keys_the_new_one_does_not_take():
  config = _parse('--config.optimizer.name=adam', '--config.optimizer.b1=0.8',
                  '--config.schedule.name=poly', '--config.schedule.power=2.0')
  assert 'momentum' not in config.optimizer  # sgd's, from the file
  assert config.optimizer.b1 == 0.8 and config.schedule.power == 2.0
  again = config_cli.parse(['main', '--config=experiments/configs/default.py',
                            '--config.model.name=swin_tiny_patch4_window7_224']).config
  assert 'pool' not in again.model.overrides and 'depth' not in again.model.overrides
  assert again.model.overrides.embed_dim == 64  # a Swin field too: the file's value stays
  with pytest.raises(ValueError, match="optimizer 'adam' has no hyper-parameter 'momentum'"):
    _parse('--config.optimizer.name=adam', '--config.optimizer.momentum=0.9')
