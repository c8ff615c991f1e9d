"""Where metrics go: the console, `metrics.jsonl` and TensorBoard event files."""

import json
import time
from typing import Any

from etils import epath   # logdir may be on GCS (gs://)
from tensorboardX import SummaryWriter  # writes event files without TensorFlow


def format_duration(seconds: float) -> str:
  seconds = int(seconds)
  h, rem = divmod(seconds, 3600)
  m, s = divmod(rem, 60)
  return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class MetricWriter:
  """Appends `{"step": .., "stage": .., **metrics}` lines to DIR/metrics.jsonl and TensorBoard.

  An inactive writer (every process but the first of a multi-process job) writes nothing:
  the metrics are global, so one copy of them is the whole record.
  """

  def __init__(self, logdir: str, stage: str, console: bool = True, active: bool = True):
    self.stage = stage
    self.console = console
    self.active = active
    if active:
      epath.Path(logdir).mkdir(parents=True, exist_ok=True)
      self._jsonl = epath.Path(logdir, "metrics.jsonl").open("a")
      self._tb = SummaryWriter(logdir)

  def write(self, step: int, metrics: dict[str, Any], prefix: str = "train") -> None:
    if not self.active:
      return
    # Scalars and strings; lists (e.g. per-class IoU) belong to result.json, not to the log.
    metrics = {k: (v if isinstance(v, str) else float(v)) for k, v in metrics.items()
               if not isinstance(v, (list, tuple, dict))}
    record = {"stage": self.stage, "split": prefix, "step": step, "time": time.time(), **metrics}
    self._jsonl.write(json.dumps(record) + "\n")
    self._jsonl.flush()
    for k, v in metrics.items():
      if isinstance(v, float):
        self._tb.add_scalar(f"{prefix}/{k}", v, step)
    self._tb.flush()
    if self.console:
      shown = " ".join(_fmt(k, v) for k, v in metrics.items())
      print(f"[{self.stage}] {prefix} step {step}: {shown}", flush=True)

  def write_image(self, step: int, tag: str, image: Any) -> None:
    """image: uint8 (H, W, C), to TensorBoard's images tab."""
    if self.active:
      self._tb.add_image(tag, image, step, dataformats="HWC")
      self._tb.flush()

  def close(self) -> None:
    if not self.active:
      return
    self._jsonl.close()
    self._tb.close()


def _fmt(key: str, value: Any) -> str:
  if isinstance(value, str):
    return f"{key}={value}"
  if key == "lr":
    return f"{key}={value:.3e}"
  if key in ("images_per_sec",):
    return f"{key}={value:.1f}"
  return f"{key}={value:.4g}"
