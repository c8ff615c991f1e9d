"""The training loop's bookkeeping: NaN checks, the log window, throughput and ETA.

Step metrics stay on the device until they are needed (a log line or a checkpoint), so the
loop never waits on the accelerator between steps; `check` fetches them all at once and stops
the run at the first non-finite loss or gradient norm, so no NaN state is ever saved.
"""

import math
import time
from typing import Any, Callable

import numpy as np

from mae_jax.errors import NonFiniteError
from mae_jax.metrics import MetricWriter, format_duration


def every(done: int, period: int) -> bool:
  """Whether a periodic action (period > 0 steps; 0 = never) falls on step `done`."""
  return period > 0 and done % period == 0


class StepLog:
  """Metrics of the steps since `first_step`: checked, averaged into log lines, kept as history.

  `fetch` turns device metrics into host ones (in the single-copy view); `last_good` says
  where the newest checkpoint is, for the message of a non-finite run.
  """

  def __init__(self, name: str, writer: MetricWriter, *, total: int, steps_per_epoch: int,
               batch_size: int, first_step: int, lr: Callable[[int], Any],
               fetch: Callable[[list[dict]], list[dict]], last_good: Callable[[], str]):
    self.name, self.writer = name, writer
    self.total, self.steps_per_epoch, self.batch_size = total, steps_per_epoch, batch_size
    self.lr, self.fetch, self.last_good = lr, fetch, last_good
    self.history: list[float] = []      # per-step train loss, this process's view
    self._unchecked: list[dict] = []    # device metrics of steps not yet checked for NaN/inf
    self._window: list[dict] = []       # checked host metrics since the last log line
    self._first_step = first_step
    self._t_window = self._t_start = time.time()

  def add(self, metrics: dict) -> None:
    """One step's device metrics (not fetched yet)."""
    self._unchecked.append(metrics)

  def check(self, done: int) -> None:
    """Fetches the unchecked steps' metrics; raises NonFiniteError at the first non-finite."""
    fetched = self.fetch(self._unchecked)
    self._unchecked.clear()
    for i, m in enumerate(fetched):
      if not (math.isfinite(m["loss"]) and math.isfinite(m["grad_norm"])):
        bad = done - len(fetched) + i + 1
        raise NonFiniteError(
            f"[{self.name}] non-finite training at step {bad} (loss={float(m['loss'])}, "
            f"grad_norm={float(m['grad_norm'])}); nothing after it is saved: "
            f"{self.last_good()}. Lower config.{self.name}.base_lr or raise warmup_epochs, "
            f"then rerun to resume.")
    self.history.extend(float(m["loss"]) for m in fetched)
    self._window.extend(fetched)

  def write(self, done: int) -> None:
    """The log line of the checked steps since the last one: means, lr, throughput, ETA."""
    mean = {k: float(np.mean([m[k] for m in self._window])) for k in self._window[0]}
    now = time.time()
    rate = len(self._window) * self.batch_size / (now - self._t_window)
    eta = (self.total - done) * (now - self._t_start) / max(done - self._first_step, 1)
    self.writer.write(done, {**mean, "lr": float(self.lr(done - 1)), "images_per_sec": rate,
                             "epoch": done / self.steps_per_epoch,
                             "eta": format_duration(eta)})
    self._window.clear()
    self._t_window = now

  def seconds(self) -> float:
    """Wall-clock seconds since the loop started."""
    return time.time() - self._t_start

  def final_epoch_loss(self) -> float | None:
    """The mean train loss over the last epoch's steps (those this run saw), or None."""
    last_epoch = self.history[-self.steps_per_epoch:]
    return float(np.mean(last_epoch)) if last_epoch else None
