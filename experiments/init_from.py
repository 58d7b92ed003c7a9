"""`config.init_from`: start a run from pretrained weights (transfer learning).

    config.init_from.path = 'hf://google/vit-base-patch16-224'   # or a file / directory
    config.init_from.dont_load = ('head/.*',)                     # regexes: keep fresh init
    config.init_from.head = 'auto'                                # | 'reinit' | 'keep'
    config.init_from.weights = 'params'                           # | 'ema' | 'polyak'

`path` is one of

* a `.safetensors` file (HuggingFace, timm or original naming) or a `.npz`
  file (those namings, or Google's vision_transformer / big_vision naming);
* a HuggingFace model directory (`config.json` + `model.safetensors`, or the
  shards of `model.safetensors.index.json`);
* `hf://ORG/NAME[@REVISION]`: that directory in huggingface_hub's cache
  (`HF_HOME`), read offline — populate it beforehand with
  `huggingface-cli download ORG/NAME`;
* a visopt workdir (the latest complete checkpoint in `WORKDIR/checkpoints/`)
  or `WORKDIR:STEP` (that step); read-only, parameters and model state only.

`weights` picks which weights of a workdir's checkpoint are loaded: 'params'
(the raw iterate x_t), or the average the source run kept in its optimizer
state, 'ema' (e_t) or 'polyak' (x̄_t) — the weights its `val_ema/*` and
`val_polyak/*` evaluations scored (experiments/weight_averaging.py). The
averages are optimizer-state entries, whose types orbax does not record, so
the source run's optimizer is rebuilt from its `config.json` and the step is
restored into that structure (shapes from `jax.eval_shape`, checksums
verified). A weight file or HF directory holds only parameters: with any
other source, and with a run that kept no such average, 'ema' and 'polyak'
are refused in one line naming what the source has.

Never unpickles: torch `.bin`/`.pth` files are refused (safetensors and npz
are flat tensor formats; orbax stores arrays with TensorStore). The weights
are fitted to the run's model by `vision.pretrained.fit_variables`: scanned
blocks stacked or split, position embeddings and Swin bias tables resized to
the run's image and window size (`vision.resize`), the classifier zeroed
when its class count differs (head='auto'), paths matching `dont_load`
kept at their initialisation, SegFormer's decoder fresh when the checkpoint
is an ImageNet MiT classifier. A checkpoint that does not fit raises one
ValueError line naming the missing, unexpected and mis-shaped paths.
"""
from __future__ import annotations

import json
import os
import re
from typing import Any, Optional

import jax
import ml_collections
import numpy as np

from experiments import checks
from experiments import config_validation
from vision import pretrained

HF_SCHEME = 'hf://'
_CHECKPOINTS = 'checkpoints'  # experiments.checkpointing.CHECKPOINT_DIR
_PICKLED = ('pytorch_model.bin', 'model.bin', 'model.pth', 'model.pt')
_CONFIG = config_validation.CONFIG_FILE
WEIGHTS = ('params', 'ema', 'polyak')


def default_config() -> ml_collections.ConfigDict:
  """The `config.init_from` block; an empty `path` means start from scratch."""
  return ml_collections.ConfigDict({'path': '', 'dont_load': (), 'head': 'auto',
                                    'weights': 'params'})


def validate(init_from: ml_collections.ConfigDict) -> None:
  """ValueError (one line) for a bad `init_from` block, before anything runs."""
  unknown = sorted(set(init_from.keys()) - set(default_config().keys()))
  if unknown:
    raise ValueError(f'init_from has unknown key(s) {unknown}; valid: '
                     f'{", ".join(default_config().keys())}.')
  head = init_from.get('head', 'auto')
  if head not in pretrained.HEAD_MODES:
    raise ValueError(f'init_from.head={head!r} is unknown; valid: '
                     f'{", ".join(pretrained.HEAD_MODES)}.')
  weights = init_from.get('weights', 'params')
  if weights not in WEIGHTS:
    raise ValueError(f'init_from.weights={weights!r} is unknown; valid: {", ".join(WEIGHTS)}.')
  dont_load = init_from.get('dont_load', ())
  if isinstance(dont_load, str):
    raise ValueError(f'init_from.dont_load must be a list of regexes, got the string '
                     f'{dont_load!r}.')
  for pattern in dont_load:
    try:
      re.compile(pattern)
    except re.error as e:
      raise ValueError(f'init_from.dont_load pattern {pattern!r} is not a regex: {e}.') from e


def load(init_from: ml_collections.ConfigDict, module: Any, fresh_variables: dict) -> dict:
  """The run's variables, initialised from `init_from.path` (see the module docstring).

  Args:
    init_from: the `config.init_from` block (path, dont_load, head, weights).
    module: the run's model (from `vision.create_model`).
    fresh_variables: its initial variables {'params': …, 'batch_stats': …};
      they fix the expected shapes and supply every entry not loaded.

  Returns:
    Host (numpy) variables with the structure and dtypes of `fresh_variables`.
  """
  validate(init_from)
  path = str(init_from.get('path', ''))
  if not path:
    raise ValueError('init_from.path is empty; set it to a checkpoint to start from.')
  family = pretrained.family_of(module)
  checkpoint, unused = read(path, module, family, init_from.get('weights', 'params'))
  fitted = pretrained.fit_variables(
      checkpoint, module, family, fresh=fresh_variables, head=init_from.get('head', 'auto'),
      dont_load=tuple(init_from.get('dont_load', ())), unused=unused)
  return jax.device_get(fitted.variables)


def read(path: str, module: Any, family: str, weights: str = 'params'
         ) -> tuple[dict, list[str]]:
  """(variables in our naming at the checkpoint's geometry, unused checkpoint keys)."""
  workdir, step = _split_step(path)
  if workdir is not None:
    return read_workdir(workdir, step, weights), []
  if path.startswith(HF_SCHEME):
    path = hub_snapshot(path[len(HF_SCHEME):])
  if os.path.isdir(path) and os.path.isdir(os.path.join(path, _CHECKPOINTS)):
    return read_workdir(path, None, weights), []
  if weights != 'params' and os.path.exists(path):
    raise ValueError(f'init_from.weights={weights!r} needs a visopt workdir (its optimizer '
                     f'state holds the averages); {path!r} holds parameters only: use '
                     "init_from.weights='params'.")
  if os.path.isdir(path):
    tensors = read_hf_directory(path)
  elif os.path.exists(path):
    if os.path.basename(path) in _PICKLED or path.endswith(('.bin', '.pth', '.pt', '.ckpt')):
      raise ValueError(f'{path!r} is a pickled torch file; it is never unpickled: convert it to '
                       '.safetensors (safetensors.torch.save_file) first.')
    tensors = pretrained.read_tensors(path)
  else:
    raise ValueError(f'init_from.path {path!r} does not exist.')
  return pretrained.convert_tensors(tensors, family, module, path)


def _split_step(path: str) -> tuple[Optional[str], Optional[int]]:
  """'WORKDIR:STEP' → (WORKDIR, STEP) when WORKDIR is a directory; else (None, None)."""
  m = re.fullmatch(r'(.+):(\d+)', path)
  if m and not path.startswith(HF_SCHEME) and os.path.isdir(m.group(1)):
    return m.group(1), int(m.group(2))
  return None, None


def workdir_steps(workdir: str) -> list[int]:
  """Steps of the complete checkpoints in a visopt workdir (orbax renames them into place)."""
  directory = os.path.join(workdir, _CHECKPOINTS)
  if not os.path.isdir(directory):
    return []
  return sorted(int(name) for name in os.listdir(directory) if name.isdigit() and
                os.path.isdir(os.path.join(directory, name, 'default')))


def read_workdir(workdir: str, step: Optional[int], weights: str = 'params') -> dict:
  """Parameters (or their `weights` average) and model state of checkpoint `step` (latest
  when None), read-only."""
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top  (heavy; workdirs only)
  steps = workdir_steps(workdir)
  if not steps:
    raise ValueError(f'{workdir!r} has no checkpoint in {os.path.join(workdir, _CHECKPOINTS)}.')
  if step is None:
    step = steps[-1]
  elif step not in steps:
    raise ValueError(f'{workdir!r} has no checkpoint at step {step}; steps: '
                     f'{", ".join(map(str, steps))}.')
  source_config = None
  if weights != 'params':
    source_config = read_source_config(workdir)
    kept = kept_weights(source_config)  # before any array is read: a refusal is cheap
    if weights not in kept:
      raise ValueError(f'init_from.weights={weights!r}: the run in {workdir!r} kept no '
                       f'{weights} average ({_SWITCH[weights]} is unset in its {_CONFIG}); '
                       f'it has: {", ".join(kept)}.')
  step_dir = os.path.join(os.path.abspath(workdir), _CHECKPOINTS, str(step))
  checkpointer = ocp.StandardCheckpointer()
  state = checkpointer.restore(os.path.join(step_dir, 'default'))
  if not isinstance(state, dict) or 'params' not in state:
    raise ValueError(f'{workdir!r} step {step} is not a visopt train state (no params).')
  params = state['params']
  model_state = dict(state.get('model_state') or {})
  if weights != 'params':
    params = averaged_weights(checkpointer, step_dir, state, source_config, weights)
  variables = {'params': params, **model_state}
  return jax.tree.map(np.asarray, variables)


# The config key that switches each average on (experiments/weight_averaging.py).
_SWITCH = {'ema': 'ema.decay', 'polyak': 'polyak.start_step'}


def read_source_config(workdir: str) -> ml_collections.ConfigDict:
  """The config a visopt workdir's run trained with (its config.json)."""
  path = os.path.join(workdir, _CONFIG)
  if not os.path.exists(path):
    raise ValueError(f'{workdir!r} has no {_CONFIG}, so the averages its optimizer state '
                     "holds cannot be located; only init_from.weights='params' reads it.")
  with open(path) as f:
    return ml_collections.ConfigDict(json.load(f))


def source_weights(workdir: str) -> list[str]:
  """The weights a workdir's checkpoints hold: 'params', then each average its run kept."""
  return kept_weights(read_source_config(workdir))


def kept_weights(config: ml_collections.ConfigDict) -> list[str]:
  """'params', then each average a run of `config` keeps in its optimizer state."""
  kept = ['params']
  for name, key in _SWITCH.items():
    section, field = key.split('.')
    if config.get(section) is not None and config[section].get(field) is not None:
      kept.append(name)
  return kept


def averaged_weights(checkpointer: Any, step_dir: str, raw: dict,
                     config: ml_collections.ConfigDict, weights: str) -> Any:
  """The `weights` average ('ema' | 'polyak') of a checkpoint, as the run evaluated it.

  `raw` is the step restored without a target (dicts in place of the optimizer
  state's NamedTuples); it supplies the parameter and model-state shapes. The
  source run's optimizer is rebuilt from `config` — any callable schedule
  gives the optimizer state of the run's schedule, as in an evaluation-only
  build — its state shapes traced with `jax.eval_shape`, and the step restored
  into `TrainState(step, params, opt_state, model_state)`.
  """
  # pylint: disable=g-import-not-at-top  (the trainer imports this module)
  import jax.numpy as jnp
  from experiments import checkpointing
  from experiments import weight_averaging
  from experiments.trainer import optimizer as optimizer_lib
  from experiments.trainer.state import TrainState
  # pylint: enable=g-import-not-at-top
  lr = config.optimizer.get('learning_rate')
  schedule = None if lr is None else (lambda count: jnp.full((), lr, jnp.float32))
  try:
    tx = optimizer_lib.make_optimizer(config, schedule)
    opt_shapes = jax.eval_shape(tx.init, raw['params'])
  except Exception as e:  # pylint: disable=broad-except  (any optimizer's own error)
    raise ValueError(f'cannot rebuild the optimizer of the run in {step_dir!r} from its '
                     f'{_CONFIG}: {checks.first_line(e)}') from e
  zeros = lambda s: np.zeros(s.shape, s.dtype)
  target = TrainState(np.asarray(raw['step']), raw['params'], jax.tree.map(zeros, opt_shapes),
                      dict(raw.get('model_state') or {}))
  try:
    state = checkpointer.restore(os.path.join(step_dir, 'default'), target)
    state = jax.tree.map(np.asarray, state)
    checkpointing.verify_checksums(step_dir, state)
  except Exception as e:  # pylint: disable=broad-except  (orbax's or the checksums')
    raise ValueError(f'{step_dir!r} does not restore as its run\'s train state: '
                     f'{checks.first_line(e)}') from e
  return weight_averaging.eval_params(state.params, state.opt_state)[
      weight_averaging.PREFIXES[weights]]


def read_hf_directory(directory: str) -> dict[str, np.ndarray]:
  """The tensors of a HuggingFace model directory (single or sharded safetensors)."""
  index = os.path.join(directory, 'model.safetensors.index.json')
  if os.path.exists(index):
    with open(index) as f:
      shards = sorted(set(json.load(f)['weight_map'].values()))
    tensors: dict[str, np.ndarray] = {}
    for shard in shards:
      tensors.update(pretrained.read_tensors(os.path.join(directory, shard)))
    return tensors
  single = os.path.join(directory, 'model.safetensors')
  if os.path.exists(single):
    return pretrained.read_tensors(single)
  files = sorted(os.listdir(directory))
  pickled = [f for f in files if f in _PICKLED]
  hint = (f'; it holds only pickled weights ({", ".join(pickled)}), which are never unpickled'
          if pickled else '')
  raise ValueError(f'{directory!r} is neither a visopt workdir nor a HuggingFace model directory '
                   f'(no model.safetensors){hint}.')


def hub_snapshot(spec: str) -> str:
  """The local directory of `ORG/NAME[@REVISION]` in huggingface_hub's cache (no network)."""
  import huggingface_hub  # pylint: disable=g-import-not-at-top  (hf:// paths only)
  repo_id, _, revision = spec.partition('@')
  if repo_id.count('/') != 1:
    raise ValueError(f'hf://{spec}: expected hf://ORG/NAME[@REVISION].')
  try:
    return huggingface_hub.snapshot_download(repo_id, revision=revision or None,
                                             local_files_only=True)
  except Exception as e:  # pylint: disable=broad-except  (hub raises several kinds)
    raise ValueError(f'hf://{spec} is not in the huggingface_hub cache '
                     f'({huggingface_hub.constants.HF_HUB_CACHE}); runs read it offline: '
                     f'download it first with `huggingface-cli download {repo_id}`.') from e
