"""`--config=FILE[:arg]` and its `--config.<key>=value` overrides, parsed into a ConfigDict.

    parsed = config_cli.parse(argv, default=DEFAULT_CONFIG)
    parsed.config      # the file's config, completed (config_schema) and overridden
    parsed.rest        # argv without the config flags, for the entry point's own flags

Order of work: load the file (`load_file`: any failure is a ValueError with
one line), apply the `--config.{model,optimizer,schedule}.name` overrides (a
new name drops the file's keys of that section that the new model, optimizer
or schedule does not take: an sgd config's momentum does not follow it to
adam), complete the config so every knob of the named model, optimizer and schedule
exists (`config_schema.complete`), check that every override names an
existing key (else the valid keys are listed), then let ml_collections parse
and type-check the values (`config_flags.DEFINE_config_dict`).
"""
from __future__ import annotations

import dataclasses
import importlib.util
import os
from typing import Any, Optional, Sequence

from absl import flags
import ml_collections
from ml_collections import config_flags

from experiments import checks
from experiments import config_schema

NAME_KEYS = ('model.name', 'optimizer.name', 'schedule.name')


@dataclasses.dataclass
class Parsed:
  config: ml_collections.ConfigDict  # completed, overrides applied (not settled)
  source: str                        # 'path.py[:arg]' as given (or the default)
  overrides: dict[str, Any]          # {dotted key: value} from the command line
  rest: list[str]                    # argv without --config and its overrides


def split_source(source: str) -> tuple[str, Optional[str]]:
  """'path.py:arg' -> ('path.py', 'arg'); no arg -> ('path.py', None)."""
  path, _, arg = source.partition(':')
  return path, (arg or None)


def load_file(source: str) -> ml_collections.ConfigDict:
  """`get_config(arg)` of the config file `path.py[:arg]` (`get_config()` without arg).

  Raises:
    ValueError: one line naming the file and why it cannot give a ConfigDict
      (missing, not Python, raising at import or in get_config, no get_config,
      or a value that is not an ml_collections.ConfigDict).
  """
  path, arg = split_source(source)
  if not os.path.isfile(path):
    what = 'is a directory' if os.path.isdir(path) else 'does not exist'
    raise ValueError(f'--config={source}: {path!r} {what}; give a config file such as '
                     'experiments/configs/default.py')
  name = '_config_' + os.path.splitext(os.path.basename(path))[0].replace('.', '_')
  try:
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
      raise ValueError('not a Python file')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
  except SyntaxError as e:
    raise ValueError(f'--config={source}: syntax error in {path} line {e.lineno}: '
                     f'{checks.one_line(e.msg or "")}') from None
  except Exception as e:  # pylint: disable=broad-except  (whatever the file raises)
    raise ValueError(f'--config={source}: {path} cannot be imported: {type(e).__name__}: '
                     f'{checks.one_line(e)}') from None
  get_config = getattr(module, 'get_config', None)
  if not callable(get_config):
    raise ValueError(f'--config={source}: {path} defines no get_config(arg=None)')
  try:
    config = get_config(arg) if arg else get_config()
  except Exception as e:  # pylint: disable=broad-except
    raise ValueError(f'--config={source}: get_config({arg!r}) raised {type(e).__name__}: '
                     f'{checks.one_line(e)}') from None
  if not isinstance(config, ml_collections.ConfigDict):
    raise ValueError(f'--config={source}: get_config returned a {type(config).__name__}, '
                     'not an ml_collections.ConfigDict')
  return config


def _override_path(arg: str, name: str) -> Optional[str]:
  """'--config.a.b=1' -> 'a.b'; '--noconfig.a' -> 'a'; anything else -> None."""
  for prefix in (f'--{name}.', f'-{name}.', f'--no{name}.', f'-no{name}.'):
    if arg.startswith(prefix):
      return arg[len(prefix):].split('=', 1)[0]
  return None


def _split_argv(argv: Sequence[str], name: str) -> tuple[Optional[str], list[str], list[str]]:
  """(the --config value, its override tokens, the other tokens); argv[0] stays in the rest."""
  source, tokens, rest = None, [], [argv[0]] if argv else []
  i = 1
  while i < len(argv):
    arg = argv[i]
    if arg in (f'--{name}', f'-{name}') and i + 1 < len(argv):
      source, i = argv[i + 1], i + 2
      continue
    if arg.startswith((f'--{name}=', f'-{name}=')):
      source = arg.split('=', 1)[1]
    elif _override_path(arg, name) is not None:
      tokens.append(arg)
      # `--config.key value`: the value is the next token unless the key is a bool.
      if '=' not in arg and not arg.startswith(('--no', '-no')) and i + 1 < len(argv) and (
          not argv[i + 1].startswith('-')):
        tokens.append(argv[i + 1])
        i += 1
    else:
      rest.append(arg)
    i += 1
  return source, tokens, rest


def _name_overrides(tokens: list[str], name: str) -> dict[str, str]:
  out = {}
  for i, arg in enumerate(tokens):
    path = _override_path(arg, name)
    if path in NAME_KEYS:
      out[path] = arg.split('=', 1)[1] if '=' in arg else (
          tokens[i + 1] if i + 1 < len(tokens) else '')
  return out


def unknown_key_message(config: ml_collections.ConfigDict, path: str) -> Optional[str]:
  """None if `path` names a key of `config`; else one line listing the valid keys."""
  node: Any = config
  parts = path.split('.')
  for i, part in enumerate(parts):
    if isinstance(node, ml_collections.ConfigDict) and part in node:
      node = node[part]
      continue
    parent = '.'.join(parts[:i])
    valid = ', '.join(sorted(node.keys())) if isinstance(node, ml_collections.ConfigDict) else ''
    if parent == 'model.overrides':
      if part in config_schema.DERIVED_MODEL_FIELDS:
        top = config_schema.DERIVED_MODEL_FIELDS[part]
        return (f'model.overrides.{part} is set from the top-level key {top}: use '
                f'--config.{top}=...')
      return (f'model.overrides.{part}: model {config.model.name!r} has no field {part!r}; '
              f'valid: {valid}')
    if parent == 'optimizer':
      return (f'optimizer.{part}: optimizer {config.optimizer.name!r} has no '
              f'hyper-parameter {part!r}; valid: {valid}')
    if parent == 'schedule':
      return (f'schedule.{part}: schedule {config.schedule.name!r} has no keyword '
              f'{part!r}; valid: {valid}')
    if not isinstance(node, ml_collections.ConfigDict):
      return f'{path}: {parent} is a {type(node).__name__}, not a section with keys'
    return f'{path}: no key {part!r} in {parent or "the config"}; valid: {valid}'
  return None


def parse(argv: Sequence[str], default: Optional[str] = None, name: str = 'config',
          required: bool = False) -> Parsed:
  """Loads, completes and overrides the config named on the command line.

  Raises:
    ValueError, flags.Error: one line (a file that cannot load, an unknown
      name or key, a value of the wrong type).
  """
  argv = list(argv)
  source, tokens, rest = _split_argv(argv, name)
  if source is None:
    if required or default is None:
      raise ValueError(f'--{name} is required: a config file, path.py[:arg]')
    source = default
  config = load_file(source)
  config.unlock()
  for path, value in _name_overrides(tokens, name).items():
    section = config[path.split('.')[0]] if path.split('.')[0] in config else None
    if not isinstance(section, ml_collections.ConfigDict):
      raise ValueError(f'--{name}.{path}: the config has no {path.split(".")[0]} section')
    if section.get('name') != value:
      section.name = value
      config_schema.drop_foreign_keys(config, path.split('.')[0])
  config = config_schema.complete(config)
  for token in tokens:
    path = _override_path(token, name)
    if path is not None:
      message = unknown_key_message(config, path)
      if message:
        raise ValueError(message)
  fv = flags.FlagValues()
  holder = config_flags.DEFINE_config_dict(name, config, flag_values=fv, lock_config=True,
                                           sys_argv=[argv[0] if argv else '', *tokens])
  fv([argv[0] if argv else '', *tokens])
  return Parsed(holder.value, source, dict(config_flags.get_override_values(fv[name])), rest)
