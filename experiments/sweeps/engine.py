"""The sweep engine: an Optuna study as the single source of truth.

Every trial the sweep will ever run is *planned* ahead of time as a WAITING
Optuna trial carrying a stable key (`s0/t0003`: stage 0, trial 3) and its
fixed parameters (`study.enqueue_trial`). Plans are deterministic (they follow
from `sweep.seed` and, for later coarse-to-fine stages, the finished results
of the previous stage), so any process can plan and all plan the same trials.

Workers, here (`--workers N` threads) or on other machines sharing the same
RDB storage, loop:

1. re-queue stale trials: RUNNING trials whose worker died (same host: its pid
   is gone; elsewhere: no heartbeat for `stale_after` seconds) are marked FAIL
   with `stale` set and re-enqueued under the same key, so the next worker
   resumes the trial's sub-workdir from its last checkpoint;
2. plan the first unfinished stage if its trials do not exist yet;
3. claim a WAITING trial atomically (WAITING -> RUNNING in the storage, as
   Optuna's own `ask` does); if a lower-numbered live trial has the same key
   (two processes planned at once) the claimed copy is pruned as a duplicate;
4. run it: `python -m experiments.main --config=trials/<key>.config.py
   --workdir=trials/<key>` in a subprocess, then record COMPLETE with the
   metric, or FAIL with the reason (non-zero exit: the trainer's last line;
   NaN/Inf: 'diverged').

A trial key is *done* when its canonical trial (the lowest-numbered one that
is neither stale nor a duplicate) is COMPLETE or FAIL, so killing and
rerunning a sweep finishes what remains and never redoes a finished trial.
"""
from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Any, Callable, Iterator, Optional, Sequence

import numpy as np
import optuna
from optuna.trial import TrialState

from experiments.sweeps import space
from experiments.sweeps.spec import SweepSpec

# Sets the parent-death signal (Linux) so a trial dies with its worker, then
# runs the trainer module as `python -m` would.
_LAUNCH = (
    'import sys, runpy\n'
    'try:\n'
    '  import ctypes, signal\n'
    '  ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)\n'
    'except Exception:\n'
    '  pass\n'
    'sys.argv = [sys.argv[1]] + sys.argv[2:]\n'
    'runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)\n')

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@dataclasses.dataclass
class TrialResult:
  """One finished trial as the report shows it."""
  number: int
  key: str
  stage: int
  state: str  # 'COMPLETE' or 'FAIL'
  value: Optional[float]
  params: dict[str, Any]
  reason: str
  workdir: str
  steps: Optional[int]
  wall_s: Optional[float]


def metric_label(metric: str) -> str:
  """'val/accuracy' -> 'val acc' (the course's live-line label)."""
  short = {'accuracy': 'acc', 'loss': 'loss', 'top5': 'top5'}
  parts = metric.split('/')
  return ' '.join(short.get(p, p) for p in parts)


def format_value(value: Any) -> str:
  if isinstance(value, float):
    return f'{value:e}'
  return str(value)


def live_line(spec: SweepSpec, result: TrialResult, done: int, total: int) -> str:
  """`val acc: 0.412000, lr: 1.405206e-04, reg: 4.793564e-01, (1 / 100)`."""
  head = (f'{metric_label(spec.metric)}: {result.value:f}' if result.state == 'COMPLETE'
          else f'FAILED ({result.reason})')
  params = ''.join(f', {p.name}: {format_value(result.params.get(p.name))}'
                   for p in spec.params)
  return f'{head}{params}, ({done} / {total})'


def read_metrics(path: str) -> list[dict[str, Any]]:
  """The records of a metrics.jsonl file (missing file: [])."""
  if not os.path.exists(path):
    return []
  out = []
  with open(path) as f:
    for line in f:
      line = line.strip()
      if line:
        try:
          out.append(json.loads(line))
        except json.JSONDecodeError:
          pass  # a line cut by a kill
  return out


def summarize(records: Sequence[dict[str, Any]], metric: str, summary: str,
              direction: str) -> tuple[Optional[float], Optional[int], str]:
  """(value, last step, failure reason or '') of a finished run's metrics."""
  for r in records:
    for key in ('train/loss', 'val/loss', metric):
      v = r.get(key)
      if isinstance(v, (int, float)) and not math.isfinite(v):
        return None, r.get('step'), f'diverged ({key}={v} at step {r.get("step")})'
  values = [(r[metric], r.get('step')) for r in records
            if isinstance(r.get(metric), (int, float))]
  if not values:
    return None, None, f'no {metric!r} in metrics.jsonl'
  last_step = records[-1].get('step')
  if summary == 'last':
    return float(values[-1][0]), last_step, ''
  pick = max if direction == 'maximize' else min
  return float(pick(v for v, _ in values)), last_step, ''


def _process_start(pid: int) -> Optional[str]:
  try:
    with open(f'/proc/{pid}/stat') as f:
      return f.read().rsplit(')', 1)[1].split()[19]
  except (OSError, IndexError):
    return None


def _alive(pid: int, start: Optional[str]) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    return True
  now = _process_start(pid)
  return start is None or now is None or now == start


def open_storage(url: str) -> optuna.storages.RDBStorage:
  """An Optuna RDB storage; ValueError (one line) if it cannot be opened."""
  kwargs: dict[str, Any] = {}
  if url.startswith('sqlite'):
    kwargs = {'connect_args': {'timeout': 120}}
  else:
    kwargs = {'pool_pre_ping': True}
  try:
    storage = optuna.storages.RDBStorage(url, engine_kwargs=kwargs)
    storage.get_all_studies()  # touches the database
  except Exception as e:  # pylint: disable=broad-except
    msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    raise ValueError(f'--storage={url!r}: cannot open the Optuna storage ({msg})') from None
  return storage


class Sweep:
  """Runs one sweep; all state lives in the Optuna storage and the workdir."""

  def __init__(self, spec: SweepSpec, *, workdir: str, config_path: str,
               config_arg: Optional[str], cli_overrides: dict[str, Any],
               storage_url: Optional[str] = None, study_name: str = 'sweep',
               trainer: str = 'experiments.main', stale_after: float = 120.0,
               heartbeat_s: float = 10.0, poll_s: float = 1.0,
               log: Callable[[str], None] = lambda line: print(line, flush=True)):
    self.spec = spec
    self.workdir = os.path.abspath(workdir)
    self.config_path = os.path.abspath(config_path)
    self.config_arg = config_arg
    self.cli_overrides = {k: v for k, v in cli_overrides.items()
                          if not k.startswith(('sweep.', 'compare.'))}
    self.storage_url = storage_url or f'sqlite:///{os.path.join(self.workdir, "sweep.db")}'
    self.study_name = study_name
    self.trainer = trainer
    self.stale_after = stale_after
    self.heartbeat_s = heartbeat_s
    self.poll_s = poll_s
    self.log = log
    self._host = socket.gethostname()
    self._pid = os.getpid()
    self._start = _process_start(self._pid)
    self._print_lock = threading.Lock()
    self._stop = threading.Event()
    self._storage: Any = None
    self._shown = 0
    self._study_id = -1

  # --- study --------------------------------------------------------------------

  def open(self) -> optuna.Study:
    """Creates or loads the study, checking it belongs to this sweep."""
    os.makedirs(self.workdir, exist_ok=True)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with self._lock():  # processes starting together create the schema once
      storage = open_storage(self.storage_url)
      self._storage = storage  # thread-safe; shared by the worker threads
      study = optuna.create_study(
          storage=storage, study_name=self.study_name, direction=self.spec.direction,
          sampler=optuna.samplers.RandomSampler(seed=self.spec.seed), load_if_exists=True)
      fingerprint = self.spec.fingerprint()
      stored = study.user_attrs.get('visopt_spec')
      if stored is None:
        study.set_user_attr('visopt_spec', fingerprint)
    if stored is not None and stored != fingerprint:
      raise ValueError(
          f'study {self.study_name!r} in {self.storage_url} holds a different sweep '
          '(other parameters, stages or metric); use a new --workdir or --study_name')
    self._study_id = storage.get_study_id_from_name(self.study_name)
    return study

  def _tid(self, trial: Any) -> int:
    """The storage id of a trial (FrozenTrial or Trial) of this study."""
    return self._storage.get_trial_id_from_study_id_trial_number(self._study_id, trial.number)

  def _lock(self) -> contextlib.AbstractContextManager:
    """A host-local lock (WORKDIR/.plan.lock) around planning and claiming.
    Processes on other hosts sharing an RDB storage rely on its row locks and
    on duplicate pruning instead."""
    @contextlib.contextmanager
    def lock() -> Iterator[None]:
      with open(os.path.join(self.workdir, '.plan.lock'), 'w') as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
          yield
        finally:
          fcntl.flock(f, fcntl.LOCK_UN)
    return lock()

  # --- bookkeeping ---------------------------------------------------------------

  @staticmethod
  def _live(t: optuna.trial.FrozenTrial) -> bool:
    return 'stale' not in t.user_attrs and 'duplicate_of' not in t.user_attrs

  def canonical(self, trials: Sequence[optuna.trial.FrozenTrial]
                ) -> dict[str, optuna.trial.FrozenTrial]:
    """key -> its canonical trial (lowest-numbered live trial of that key)."""
    out: dict[str, optuna.trial.FrozenTrial] = {}
    for t in sorted(trials, key=lambda t: t.number):
      key = t.user_attrs.get('key')
      if key is not None and self._live(t) and key not in out:
        out[key] = t
    return out

  @staticmethod
  def _finished(t: optuna.trial.FrozenTrial) -> bool:
    return t.state in (TrialState.COMPLETE, TrialState.FAIL)

  def results(self, study: optuna.Study) -> list[TrialResult]:
    """Every finished canonical trial."""
    out = []
    for key, t in sorted(self.canonical(study.get_trials(deepcopy=False)).items()):
      if not self._finished(t):
        continue
      params = dict(t.params) or dict(t.system_attrs.get('fixed_params', {}))
      out.append(TrialResult(
          t.number, key, int(t.user_attrs.get('stage', 0)), t.state.name,
          t.value if t.state == TrialState.COMPLETE else None, params,
          t.user_attrs.get('fail_reason', ''), t.user_attrs.get('workdir', ''),
          t.user_attrs.get('steps'), t.user_attrs.get('wall_s')))
    return out

  # --- planning ------------------------------------------------------------------

  def stage_params(self, stage: int, study: optuna.Study) -> list[space.Param]:
    """The search space of `stage`: the configured one, narrowed stage by stage
    around the previous stage's `top_k` best completed trials."""
    params = list(self.spec.params)
    done = self.results(study)
    for s in range(stage):
      ranked = sorted((r for r in done if r.stage == s and r.state == 'COMPLETE'),
                      key=lambda r: r.value, reverse=self.spec.direction == 'maximize')
      best = ranked[:self.spec.stages[s].top_k]
      if best:
        params = [space.narrow(p, [r.params[p.name] for r in best], self.spec.margin)
                  for p in params]
    return params

  def plan(self, stage: int, study: optuna.Study) -> list[tuple[str, dict[str, Any]]]:
    """The (key, parameter values) of every trial of `stage`."""
    params = self.stage_params(stage, study)
    n = self.spec.stages[stage].num_trials
    if self.spec.method == 'grid':
      values = space.grid(params, self.spec.grid_points)
    else:
      rng = np.random.default_rng([self.spec.seed, stage])
      values = [space.sample(params, rng) for _ in range(n)]
    return [(f's{stage}/t{i:04d}', v) for i, v in enumerate(values)]

  def _enqueue_stage(self, stage: int, study: optuna.Study) -> None:
    with self._lock():
      trials = study.get_trials(deepcopy=False)
      existing = {t.user_attrs.get('key') for t in trials}
      params = self.stage_params(stage, study)
      if stage > 0 and not any(k and k.startswith(f's{stage}/') for k in existing):
        ranges = ', '.join(
            f'{p.name} in [{format_value(p.low)}, {format_value(p.high)}]' if p.numeric
            else f'{p.name} in {list(p.values)}' for p in params)
        self._print(f'stage {stage}: {ranges}')
      for key, values in self.plan(stage, study):
        if key not in existing:
          study.enqueue_trial(values, user_attrs={
              'key': key, 'stage': stage,
              'space': json.dumps({p.name: [p.distribution, p.low, p.high, list(p.values)]
                                   for p in params}, default=repr)})

  # --- stale trials -----------------------------------------------------------------

  def _stale_reason(self, t: optuna.trial.FrozenTrial) -> Optional[str]:
    owner = t.user_attrs.get('owner')
    now = time.time()
    if owner and owner.get('host') == self._host:
      if owner.get('pid') == self._pid and owner.get('start') == self._start:
        return None  # ours (another thread)
      if _alive(owner['pid'], owner.get('start')):
        return None
      child = owner.get('child_pid')
      if child and _alive(child, owner.get('child_start')):
        with contextlib.suppress(OSError):
          os.killpg(child, signal.SIGKILL)
      return f'worker pid {owner["pid"]} on {self._host} is gone'
    beat = t.user_attrs.get('heartbeat')
    if beat is None and t.datetime_start is not None:
      beat = t.datetime_start.timestamp()
    if beat is not None and now - beat > self.stale_after:
      return f'no heartbeat for {now - beat:.0f} s'
    return None

  def _requeue_stale(self, study: optuna.Study) -> None:
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
      if 'key' not in t.user_attrs or not self._live(t):
        continue
      reason = self._stale_reason(t)
      if reason is None:
        continue
      with self._lock():
        fresh = self._storage.get_trial(self._tid(t))
        if fresh.state != TrialState.RUNNING or 'stale' in fresh.user_attrs:
          continue
        storage = self._storage
        storage.set_trial_user_attr(self._tid(t), 'stale', reason)
        storage.set_trial_user_attr(self._tid(t), 'fail_reason', f'stale: {reason}')
        study.tell(t.number, state=TrialState.FAIL, skip_if_finished=True)
        params = dict(t.params) or dict(t.system_attrs.get('fixed_params', {}))
        attrs = {k: v for k, v in t.user_attrs.items() if k in ('key', 'stage', 'space')}
        study.enqueue_trial(params, user_attrs={**attrs, 'requeued_from': t.number})
        self._print(f'trial {t.user_attrs["key"]} (#{t.number}) was left RUNNING '
                    f'({reason}); re-queued, it resumes from its checkpoint')

  # --- claiming and running --------------------------------------------------------------

  def _claim(self, study: optuna.Study) -> Optional[optuna.trial.Trial]:
    """WAITING -> RUNNING for one trial. The storage makes this atomic on
    PostgreSQL/MySQL (row lock); SQLite has no row locks, hence the file lock
    around it for the processes and threads of this host."""
    storage = self._storage
    with self._lock():
      for t in study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
        try:
          if storage.set_trial_state_values(self._tid(t), TrialState.RUNNING):
            return optuna.trial.Trial(study, self._tid(t))
        except optuna.exceptions.UpdateFinishedTrialError:
          continue
    return None

  def _print(self, line: str) -> None:
    with self._print_lock:
      self.log(line)

  def trial_dir(self, key: str) -> str:
    return os.path.join(self.workdir, 'trials', key.replace('/', '_'))

  def write_trial_config(self, trial_dir: str, key: str, overrides: dict[str, Any]) -> str:
    """The trial's config file: the sweep config with its overrides."""
    os.makedirs(os.path.dirname(trial_dir), exist_ok=True)
    path = trial_dir + '.config.py'  # next to the run's workdir, which the trainer owns
    text = (
        f'"""Trial {key} of the sweep in {self.workdir}.\n\n'
        f'    python -m {self.trainer} --config={path} --workdir={trial_dir}\n"""\n'
        'from experiments.sweeps import space\n\n'
        f'BASE = {self.config_path!r}\n'
        f'ARG = {self.config_arg!r}\n'
        f'OVERRIDES = {overrides!r}\n\n\n'
        'def get_config(arg=None):\n'
        '  del arg  # the trial is fixed\n'
        '  return space.trial_config(BASE, ARG, OVERRIDES)\n')
    tmp = path + '.tmp'
    with open(tmp, 'w') as f:
      f.write(text)
    os.replace(tmp, path)
    return path

  def trial_command(self, config_file: str, trial_dir: str) -> list[str]:
    return [sys.executable, '-c', _LAUNCH, self.trainer, f'--config={config_file}',
            f'--workdir={trial_dir}']

  def _heartbeat(self, storage: Any, trial_id: int, done: threading.Event) -> None:
    while not done.wait(self.heartbeat_s):
      with contextlib.suppress(Exception):
        storage.set_trial_user_attr(trial_id, 'heartbeat', time.time())

  def _run_trial(self, study: optuna.Study, trial: optuna.trial.Trial) -> Optional[TrialResult]:
    storage = self._storage
    frozen = storage.get_trial(self._tid(trial))
    key = frozen.user_attrs['key']
    stage = int(frozen.user_attrs.get('stage', 0))
    twins = [t for t in study.get_trials(deepcopy=False)
             if t.user_attrs.get('key') == key and self._live(t) and t.number < trial.number]
    if twins:
      trial.set_user_attr('duplicate_of', twins[0].number)
      study.tell(trial, state=TrialState.PRUNED)
      return None
    owner = {'host': self._host, 'pid': self._pid, 'start': self._start}
    trial.set_user_attr('owner', owner)
    trial.set_user_attr('heartbeat', time.time())
    values = {}
    for p in self.spec.params:
      # The full configured range: narrowed stages' draws lie inside it.
      if p.distribution == 'int':
        values[p.name] = trial.suggest_int(p.name, int(p.low), int(p.high), log=p.log)
      elif p.numeric:
        values[p.name] = trial.suggest_float(p.name, p.low, p.high, log=p.log)
      else:
        values[p.name] = trial.suggest_categorical(p.name, list(p.values))
    trial_dir = self.trial_dir(key)
    overrides = {**self.cli_overrides, **self.spec.stages[stage].budget,
                 **space.overrides_for(self.spec.params, values)}
    config_file = self.write_trial_config(trial_dir, key, overrides)
    trial.set_user_attr('workdir', trial_dir)
    log_path = trial_dir + '.log'
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(
        [PROJECT_ROOT] + [p for p in env.get('PYTHONPATH', '').split(os.pathsep) if p])
    t0 = time.time()
    done = threading.Event()
    beat = threading.Thread(target=self._heartbeat,
                            args=(storage, self._tid(trial), done), daemon=True)
    with open(log_path, 'ab') as logf:
      proc = subprocess.Popen(self.trial_command(config_file, trial_dir), cwd=PROJECT_ROOT,
                              env=env, stdout=logf, stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL, start_new_session=True)
      trial.set_user_attr('owner', {**owner, 'child_pid': proc.pid,
                                    'child_start': _process_start(proc.pid)})
      beat.start()
      try:
        rc = proc.wait()
      finally:
        done.set()
        if proc.poll() is None:
          with contextlib.suppress(OSError):
            os.killpg(proc.pid, signal.SIGKILL)
    wall = time.time() - t0
    records = read_metrics(os.path.join(trial_dir, 'metrics.jsonl'))
    if rc != 0:
      value, steps, reason = None, (records[-1].get('step') if records else None), \
          self._failure_line(log_path, rc)
    else:
      value, steps, reason = summarize(records, self.spec.metric, self.spec.summary,
                                       self.spec.direction)
    trial.set_user_attr('wall_s', wall)
    trial.set_user_attr('steps', steps)
    if reason:
      trial.set_user_attr('fail_reason', reason)
      study.tell(trial, state=TrialState.FAIL)
    else:
      study.tell(trial, value)
    return TrialResult(trial.number, key, stage, 'FAIL' if reason else 'COMPLETE', value,
                       values, reason, trial_dir, steps, wall)

  @staticmethod
  def _failure_line(log_path: str, rc: int) -> str:
    if rc < 0:
      return f'killed by signal {-rc}'
    try:
      with open(log_path, 'rb') as f:
        f.seek(max(0, os.path.getsize(log_path) - 8192))
        lines = [l.strip() for l in f.read().decode('utf-8', 'replace').splitlines()]
    except OSError:
      lines = []
    lines = [l for l in lines if l]
    last = lines[-1] if lines else ''
    return f'exit {rc}: {last[:300]}' if last else f'exit {rc}'

  # --- the worker loop ----------------------------------------------------------------------

  def progress(self, study: optuna.Study) -> tuple[int, int, Optional[int], bool]:
    """(finished trials, total, first unfinished stage, whether it is planned)."""
    canon = self.canonical(study.get_trials(deepcopy=False))
    finished = sum(self._finished(t) for t in canon.values())
    for s, stage in enumerate(self.spec.stages):
      keys = [k for k in canon if k.startswith(f's{s}/')]
      planned = len(keys) >= stage.num_trials
      if not planned or not all(self._finished(canon[k]) for k in keys):
        return finished, self.spec.total_trials, s, planned
    return finished, self.spec.total_trials, None, True

  def worker(self) -> None:
    """Claims and runs trials until every stage is finished."""
    study = optuna.load_study(study_name=self.study_name, storage=self._storage,
                              sampler=optuna.samplers.RandomSampler(seed=self.spec.seed))
    while not self._stop.is_set():
      self._requeue_stale(study)
      _, _, stage, planned = self.progress(study)
      if stage is None:
        return
      if not planned:
        self._enqueue_stage(stage, study)
        continue
      trial = self._claim(study)
      if trial is None:
        self._stop.wait(self.poll_s)  # the stage's last trials run elsewhere
        continue
      result = self._run_trial(study, trial)
      if result is not None:
        with self._print_lock:
          # One number per line: trials finished before this run, then one per
          # trial finished here (counting the study's finished trials instead
          # would skip a number when two workers finish together).
          self._shown += 1
          self.log(live_line(self.spec, result, self._shown, self.spec.total_trials))

  def run(self, workers: int = 1) -> list[TrialResult]:
    """Runs the sweep with `workers` concurrent trials; returns all results."""
    study = self.open()
    self._shown = self.progress(study)[0]
    errors: list[BaseException] = []

    def target() -> None:
      try:
        self.worker()
      except BaseException as e:  # pylint: disable=broad-except
        errors.append(e)
        self._stop.set()

    threads = [threading.Thread(target=target, daemon=True) for _ in range(workers)]
    for t in threads:
      t.start()
      time.sleep(0.05)  # stagger the first claims
    try:
      for t in threads:
        while t.is_alive():
          t.join(0.5)
    except KeyboardInterrupt:
      self._stop.set()
      raise
    if errors:
      raise errors[0]
    return self.results(study)
