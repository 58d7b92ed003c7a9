"""Timing helpers and the measurement record shared by benchmark sections."""
from __future__ import annotations

import dataclasses
import statistics
import time
from typing import Any, Callable, Optional

import jax


@dataclasses.dataclass
class Measurement:
  """One benchmark row: ours against a peer measured in the same run.

  `ratio` is peer_time / our_time for times (higher is better for us) unless
  `higher_is_better` says the figures are throughputs, in which case it is
  ours / peer. Either way, ratio > 1 means we are faster.
  """
  section: str
  name: str
  ours: float
  peer: float
  unit: str
  peer_name: str
  higher_is_better: bool = False
  extra: dict[str, Any] = dataclasses.field(default_factory=dict)

  @property
  def ratio(self) -> float:
    if self.higher_is_better:
      return self.ours / self.peer if self.peer else float('inf')
    return self.peer / self.ours if self.ours else float('inf')

  def as_dict(self) -> dict[str, Any]:
    d = dataclasses.asdict(self)
    d['ratio'] = self.ratio
    return d


def block(x: Any) -> Any:
  """Waits for every jax array in `x` (async dispatch would flatter timings)."""
  return jax.block_until_ready(x)


def interleaved_times(fns: dict[str, Callable[[], Any]], repeats: int = 10,
                      warmup: int = 2, sync: Optional[Callable[[Any], Any]] = None
                      ) -> dict[str, float]:
  """Median seconds per call for each fn, alternating calls to share noise.

  Running the candidates round-robin (A, B, A, B, …) rather than one after
  the other keeps slow drifts of the machine (thermal, other load) from
  favouring one side.
  """
  sync = sync or block
  for _ in range(warmup):
    for fn in fns.values():
      sync(fn())
  samples: dict[str, list[float]] = {k: [] for k in fns}
  for _ in range(repeats):
    for k, fn in fns.items():
      t0 = time.perf_counter()
      sync(fn())
      samples[k].append(time.perf_counter() - t0)
  return {k: statistics.median(v) for k, v in samples.items()}
