"""Matplotlib figures for the course experiments (Agg backend, no display)."""
from __future__ import annotations

from typing import Any

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402  (after selecting the backend)


def new(cols: int = 1, rows: int = 1, width: float = 5.2, height: float = 4.2) -> tuple[Any, Any]:
  """(figure, axes[rows][cols]) with panels of `width` × `height` inches."""
  return plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)


def save(fig: Any, path: str, title: str | None = None) -> str:
  if title:
    fig.suptitle(title)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)
  return path
