"""Shared check for the course experiments' tests: run quick mode, every claim holds."""
from __future__ import annotations

import types


def assert_quick_claims_hold(module: types.ModuleType, tmp_path, count: int,
                             plots: tuple[str, ...] = ()) -> dict:
  """Runs `module.run(tmp_path, quick=True)`; asserts its `count` claims all
  hold and that OUT/<name>.png (and `plots`) are real images; returns the claims."""
  claims = module.run(str(tmp_path), quick=True)
  assert len(claims) == count, sorted(claims)
  failed = {k: c for k, c in claims.items() if not c.holds}
  assert not failed, failed
  name = module.__name__.rsplit('.', 1)[-1]
  for png in (f'{name}.png', *plots):
    assert (tmp_path / png).stat().st_size > 10_000, png
  return claims
