"""Matplotlib figures written as PNG files (local or gs://), headless: one home for the backend
choice and the save steps that report.py, per_class.py and sweep_report.py share."""

from types import ModuleType
from typing import Any

from etils import epath   # the workdir may be on GCS (gs://)


def pyplot() -> ModuleType:
  """matplotlib.pyplot on the Agg backend (files only, no display); imported on first use, so
  that a run which draws nothing never loads matplotlib."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  return plt


def save_png(fig: Any, path: str) -> Any:
  """Lays `fig` out, writes it to `path` as a 100 dpi PNG and closes it. -> the drawn image,
  uint8 (H, W, 3), for TensorBoard."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  fig.tight_layout()
  fig.canvas.draw()
  image = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
  with epath.Path(path).open("wb") as f:
    fig.savefig(f, format="png", dpi=100)
  pyplot().close(fig)
  return image
