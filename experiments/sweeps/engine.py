"""The sweep engine: an Optuna study as the single source of truth.

Every trial the sweep will ever run is *planned* ahead of time as a WAITING
Optuna trial carrying a stable key (`s0/t0003`: stage 0, trial 3) and its
fixed parameters (`study.enqueue_trial`). Plans are deterministic (they follow
from `sweep.seed` and, for later coarse-to-fine stages, the finished results
of the previous stage), so any process can plan and all plan the same trials.

Workers, here (`--workers N` threads) or on other machines sharing the same
RDB storage, loop:

1. give up trials whose worker died: Optuna fails every RUNNING trial without
   a heartbeat for `stale_after` seconds (`optuna.storages.fail_stale_trials`);
   on a SQLite storage (one host) a trial whose worker process is gone is
   failed at once. Such an *abandoned* trial is FAIL without a `fail_reason`;
2. plan the first unfinished stage: enqueue every key of it that has no live
   trial (never planned, or abandoned: that key is re-queued, and the next
   worker resumes its sub-workdir from its last checkpoint);
3. claim a WAITING trial atomically (WAITING -> RUNNING in the storage, as
   Optuna's own `ask` does); if a lower-numbered live trial has the same key
   (two processes planned at once) the claimed copy is pruned as a duplicate;
4. run it (experiments/sweeps/launcher.py) and record COMPLETE with the
   metric, or FAIL with a one-line `fail_reason` (non-zero exit: the trainer's
   last line; NaN/Inf: 'diverged').

A trial key is *done* when its canonical trial (the lowest-numbered live one:
not a duplicate, not abandoned) is COMPLETE or FAIL, so killing and rerunning
a sweep finishes what remains and never redoes a finished trial.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import threading
from typing import Any, Callable, Iterator, Optional, Sequence

import numpy as np
import optuna
from optuna.trial import TrialState
import sqlalchemy

from experiments import checks
from experiments import jsonl
from experiments.sweeps import launcher
from experiments.sweeps import space
from experiments.sweeps import storage as storage_lib
from experiments.sweeps.results import TrialResult
from experiments.sweeps.results import format_value
from experiments.sweeps.results import live_line
from experiments.sweeps.results import summarize
from experiments.sweeps.spec import SweepSpec


class Sweep:
  """Runs one sweep; all state lives in the Optuna storage and the workdir."""

  def __init__(self, spec: SweepSpec, *, workdir: str, config_path: str,
               config_arg: Optional[str], cli_overrides: dict[str, Any],
               storage_url: Optional[str] = None, study_name: str = 'sweep',
               trainer: str = 'experiments.main', stale_after: int = 120,
               heartbeat_s: int = 10, poll_s: float = 1.0,
               log: Callable[[str], None] = lambda line: print(line, flush=True)):
    self.spec = spec
    self.workdir = os.path.abspath(workdir)
    self.config_path = os.path.abspath(config_path)
    self.config_arg = config_arg
    self.cli_overrides = {k: v for k, v in cli_overrides.items()
                          if not k.startswith(('sweep.', 'compare.'))}
    self.storage_url = storage_url or f'sqlite:///{os.path.join(self.workdir, "sweep.db")}'
    self._lock_path = os.path.join(self.workdir, '.plan.lock')
    if storage_lib.is_local(self.storage_url):
      with contextlib.suppress(sqlalchemy.exc.ArgumentError):  # open() reports a bad URL
        database = sqlalchemy.engine.make_url(self.storage_url).database
        if database and database != ':memory:':
          self._lock_path = os.path.abspath(database) + '.lock'
    self.study_name = study_name
    self.trainer = trainer
    self.stale_after = stale_after
    self.heartbeat_s = heartbeat_s
    self.poll_s = poll_s
    self.log = log
    self._host = socket.gethostname()
    self._me = launcher.ProcessId.of(os.getpid())
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
      storage = storage_lib.open_storage(self.storage_url, heartbeat_s=self.heartbeat_s,
                                         grace_s=self.stale_after)
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
    """A host-local file lock around planning and claiming: next to a SQLite
    database (which has no row locks) for every process using it, else
    WORKDIR/.plan.lock for this host's threads and processes; processes on
    other hosts rely on the server's row locks and on duplicate pruning."""
    @contextlib.contextmanager
    def lock() -> Iterator[None]:
      with open(self._lock_path, 'w') as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
          yield
        finally:
          fcntl.flock(f, fcntl.LOCK_UN)
    return lock()

  # --- bookkeeping ---------------------------------------------------------------

  @staticmethod
  def abandoned(t: optuna.trial.FrozenTrial) -> bool:
    """Failed because its worker died, not because the trial failed: a trial
    that ran to an end is FAIL only with a recorded `fail_reason`."""
    return t.state == TrialState.FAIL and 'fail_reason' not in t.user_attrs

  def _why_abandoned(self, t: optuna.trial.FrozenTrial) -> str:
    """Why an abandoned trial was failed: its worker's process gone, or its heartbeat lapsed."""
    return t.user_attrs.get('abandoned', f'no heartbeat for {self.stale_after} s')

  @classmethod
  def _live(cls, t: optuna.trial.FrozenTrial) -> bool:
    return 'duplicate_of' not in t.user_attrs and not cls.abandoned(t)

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

  @staticmethod
  def _params(t: optuna.trial.FrozenTrial) -> dict[str, Any]:
    return dict(t.params) or dict(t.system_attrs.get('fixed_params', {}))

  def results(self, study: optuna.Study) -> list[TrialResult]:
    """Every finished canonical trial."""
    out = []
    for key, t in sorted(self.canonical(study.get_trials(deepcopy=False)).items()):
      if not self._finished(t):
        continue
      out.append(TrialResult(
          t.number, key, int(t.user_attrs.get('stage', 0)), t.state.name,
          t.value if t.state == TrialState.COMPLETE else None, self._params(t),
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
    """Enqueues every key of `stage` without a live trial: new keys with the
    plan's values, abandoned ones again with the values they ran with."""
    with self._lock():
      trials = study.get_trials(deepcopy=False)
      existing = {t.user_attrs.get('key') for t in trials}
      live = self.canonical(trials)
      lost = {t.user_attrs['key']: t for t in trials
              if t.user_attrs.get('key') not in live and self.abandoned(t)}
      params = self.stage_params(stage, study)
      if stage > 0 and not any(k and k.startswith(f's{stage}/') for k in existing):
        ranges = ', '.join(
            f'{p.name} in [{format_value(p.low)}, {format_value(p.high)}]' if p.numeric
            else f'{p.name} in {list(p.values)}' for p in params)
        self._print(f'stage {stage}: {ranges}')
      for key, values in self.plan(stage, study):
        if key in live:
          continue
        if key in lost:
          t = lost[key]
          study.enqueue_trial(self._params(t), user_attrs={
              **{k: v for k, v in t.user_attrs.items() if k in ('key', 'stage', 'space')},
              'requeued_from': t.number})
          self._print(f'trial {key} (#{t.number}) was left RUNNING ({self._why_abandoned(t)}); '
                      're-queued, it resumes from its checkpoint')
        elif key not in existing:
          study.enqueue_trial(values, user_attrs={
              'key': key, 'stage': stage,
              'space': json.dumps({p.name: [p.distribution, p.low, p.high, list(p.values)]
                                   for p in params}, default=repr)})

  # --- trials whose worker died -------------------------------------------------------

  def _abandon_dead(self, study: optuna.Study) -> None:
    """Fails the RUNNING trials whose worker died: at once on SQLite, whose
    workers all run on this host, when the worker's process is gone (its
    orphaned trial process, if any, is killed); then by Optuna's heartbeat on
    any storage. The process check goes first so that a dead local worker's
    trial names it as the reason even when its heartbeat has lapsed as well."""
    if storage_lib.is_local(self.storage_url):  # pids of other hosts mean nothing here
      self._abandon_gone_workers(study)
    optuna.storages.fail_stale_trials(study)

  def _abandon_gone_workers(self, study: optuna.Study) -> None:
    """Fails the RUNNING trials of this host whose worker process is gone."""
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
      owner = t.user_attrs.get('owner')
      if not owner or owner.get('host') != self._host or 'key' not in t.user_attrs:
        continue
      worker = launcher.ProcessId(owner['pid'], owner.get('start'))
      if worker == self._me or worker.alive():
        continue
      if owner.get('child_pid'):
        launcher.ProcessId(owner['child_pid'], owner.get('child_start')).kill_group()
      with self._lock():
        tid = self._tid(t)
        if self._storage.get_trial(tid).state != TrialState.RUNNING:
          continue
        self._storage.set_trial_user_attr(
            tid, 'abandoned', f'worker pid {worker.pid} on {self._host} is gone')
        self._storage.set_trial_state_values(tid, TrialState.FAIL)

  # --- claiming and running --------------------------------------------------------------

  def _claim(self, study: optuna.Study) -> Optional[optuna.trial.Trial]:
    """WAITING -> RUNNING for one trial. The storage makes this atomic on
    PostgreSQL/MySQL (row lock); SQLite has no row locks, hence the file lock
    around it for the processes and threads of this host."""
    storage = self._storage
    with self._lock():
      for t in study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
        tid = self._tid(t)
        try:
          if storage.set_trial_state_values(tid, TrialState.RUNNING):
            storage.record_heartbeat(tid)  # from now on, silence means a dead worker
            return optuna.trial.Trial(study, tid)
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

  def _suggest(self, trial: optuna.trial.Trial) -> dict[str, Any]:
    """The trial's (enqueued) values, through the full configured ranges:
    narrowed stages' draws lie inside them."""
    values = {}
    for p in self.spec.params:
      if p.distribution == 'int':
        values[p.name] = trial.suggest_int(p.name, int(p.low), int(p.high), log=p.log)
      elif p.numeric:
        values[p.name] = trial.suggest_float(p.name, p.low, p.high, log=p.log)
      else:
        values[p.name] = trial.suggest_categorical(p.name, list(p.values))
    return values

  def _run_trial(self, study: optuna.Study, trial: optuna.trial.Trial) -> Optional[TrialResult]:
    """Runs a claimed trial, records its outcome and prints its line; None if
    it was not run (a duplicate) or its outcome came too late (abandoned meanwhile)."""
    storage = self._storage
    tid = self._tid(trial)
    frozen = storage.get_trial(tid)
    key = frozen.user_attrs['key']
    stage = int(frozen.user_attrs.get('stage', 0))
    earlier = [t for t in study.get_trials(deepcopy=False)
               if t.user_attrs.get('key') == key and t.number < trial.number]
    twins = [t for t in earlier if self._live(t)]
    if twins:
      trial.set_user_attr('duplicate_of', twins[0].number)
      study.tell(trial, state=TrialState.PRUNED)
      return None
    lost = [t for t in earlier if self.abandoned(t)]
    if lost and 'requeued_from' not in frozen.user_attrs:
      # Another host's copy of the plan queued this key too; with the abandoned
      # trial failed, that copy is now the key's canonical trial and runs it.
      t = lost[-1]
      trial.set_user_attr('requeued_from', t.number)
      self._print(f'trial {key} (#{t.number}) was left RUNNING ({self._why_abandoned(t)}); '
                  f'its queued copy #{trial.number} runs it')
    owner = {'host': self._host, 'pid': self._me.pid, 'start': self._me.start}
    trial.set_user_attr('owner', owner)
    values = self._suggest(trial)
    trial_dir = self.trial_dir(key)
    trial.set_user_attr('workdir', trial_dir)
    overrides = {**self.cli_overrides, **self.spec.stages[stage].budget,
                 **space.overrides_for(self.spec.params, values)}
    steps: Optional[int] = None
    wall: Optional[float] = None
    value: Optional[float] = None
    try:
      config_file = self.write_trial_config(trial_dir, key, overrides)
      ended = launcher.run(
          self.trainer, config_file, trial_dir, trial_dir + '.log',
          heartbeat=lambda: storage.record_heartbeat(tid), heartbeat_s=self.heartbeat_s,
          started=lambda child: trial.set_user_attr(
              'owner', {**owner, 'child_pid': child.pid, 'child_start': child.start}))
      wall = ended.wall_s
      records = jsonl.read(os.path.join(trial_dir, 'metrics.jsonl'))
      if ended.returncode != 0:
        steps = records[-1].get('step') if records else None
        reason = launcher.failure_line(trial_dir + '.log', ended.returncode)
      else:
        value, steps, reason = summarize(records, self.spec.metric, self.spec.summary,
                                         self.spec.direction)
    except (OSError, ValueError) as e:  # the trial's files: recorded, the sweep goes on
      reason = f'{type(e).__name__}: {checks.one_line(e)}'
    # The outcome is recorded and its line printed under the print lock, so a
    # worker thread that sees this trial finished and announces the next stage
    # prints after this trial's line.
    with self._print_lock:
      try:
        trial.set_user_attr('wall_s', wall)
        trial.set_user_attr('steps', steps)
        if reason:
          trial.set_user_attr('fail_reason', reason)
          study.tell(trial, state=TrialState.FAIL)
        else:
          study.tell(trial, value)
      except optuna.exceptions.UpdateFinishedTrialError:
        self.log(f'trial {key} (#{trial.number}) ended after its heartbeat lapsed and '
                 'it was re-queued; this outcome is dropped')
        return None
      result = TrialResult(trial.number, key, stage, 'FAIL' if reason else 'COMPLETE', value,
                           values, reason, trial_dir, steps, wall)
      # One number per line: trials finished before this run, then one per
      # trial finished here (counting the study's finished trials instead
      # would skip a number when two workers finish together).
      self._shown += 1
      self.log(live_line(self.spec, result, self._shown, self.spec.total_trials))
    return result

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
      self._abandon_dead(study)
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
      self._run_trial(study, trial)

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
      self._stop.wait(0.05)  # stagger the first claims
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
