"""Orbax checkpoints: resumable train states per stage, and writing exports.

Reading an export (or any other saved model) for use is weights.py's.
"""

import json
import logging
import os
import sys
from typing import Any, Callable

import jax
import orbax.checkpoint as ocp
from etils import epath   # directories may be on GCS (gs://)

from mae_jax import distributed

MODEL_JSON = "model.json"
PARAMS_DIR = "params"


def absolute(directory: str) -> str:
  """Orbax wants absolute paths; a URL (gs://bucket/dir) already is one."""
  return directory if "://" in directory else os.path.abspath(directory)


_ABORTED_READ = "Event loop is closed"
_UNRETRIEVED = ("Task exception was never retrieved", "Future exception was never retrieved")
_quieted = False


def _quiet_aborted_reads() -> None:
  """Drops the noise a failed Orbax restore leaves behind; our one-line report stays.

  A restore reads every array concurrently and raises at the first unreadable one. Then (Orbax
  0.12) the other reads of a damaged step still finish: asyncio logs each failed one as "Task
  (or Future) exception was never retrieved" with its tensorstore error and a traceback, and
  tensorstore hands each finished one to the event loop Orbax has already closed, which Python
  reports as an unraisable RuntimeError("Event loop is closed") with a traceback: 40-200 KB of
  stderr per damaged step. They come from other threads, some after the restore has returned,
  so the filters stay on for the process; they drop only those messages.
  """
  global _quieted
  if _quieted:
    return
  _quieted = True
  previous = sys.unraisablehook

  def unraisable_hook(unraisable: Any) -> None:
    exc = unraisable.exc_value
    if not (isinstance(exc, RuntimeError) and str(exc) == _ABORTED_READ):
      previous(unraisable)

  sys.unraisablehook = unraisable_hook

  def read_error(record: logging.LogRecord) -> bool:
    message = record.getMessage()
    return message.startswith(_UNRETRIEVED) and "tensorstore_spec" in message

  logging.getLogger("asyncio").addFilter(lambda record: not read_error(record))


class StateCheckpoints:
  """Async, keep-N checkpoints of a train state under `directory` (one step per subfolder)."""

  def __init__(self, directory: str, keep: int, every_steps: int):
    self.every_steps = every_steps
    self._open = True
    options = ocp.CheckpointManagerOptions(max_to_keep=keep, enable_async_checkpointing=True,
                                           create=True)
    self.manager = ocp.CheckpointManager(absolute(directory), options=options)

  def latest_step(self) -> int | None:
    return self.manager.latest_step()

  def restore(self, like: Any, step: int | None = None) -> Any:
    """Restores `step` (default: the newest) into the structure, shapes and shardings of `like`."""
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
    step = self.manager.latest_step() if step is None else step
    return self.manager.restore(step, args=ocp.args.StandardRestore(abstract))

  def restore_latest_good(self, like: Any, log: Callable[[str], None] = print) -> Any | None:
    """The newest checkpoint that restores, or None if there is none.

    A damaged one (truncated or missing file, unreadable metadata) is reported, moved to
    `<directory>_damaged/<step>` so that no later run trips on it again, and skipped. In a
    multi-process job, every process must call this: they skip a step together when any of
    them could not read it, else they would restore different steps and then wait on each
    other in the first collective.
    """
    _quiet_aborted_reads()
    for step in sorted(self.manager.all_steps(), reverse=True):
      restored, reason = None, None
      try:
        restored = self.restore(like, step)
      except Exception as err:  # pylint: disable=broad-except  (any failure means unusable)
        reason = " ".join(f"{type(err).__name__}: {err}".split())[:300]
      if distributed.everywhere(reason is None):
        return restored
      aside = self._move_aside(step)
      log(f"checkpoint step {step} in {self.manager.directory} is damaged "
          f"({reason or 'unreadable in another process'}); moved to {aside}, "
          f"trying the previous one")
    return None

  def _move_aside(self, step: int) -> str:
    """Moves step `step` to `<directory>_damaged/<step>` (once: process 0 moves it)."""
    directory = epath.Path(self.manager.directory)
    target = directory.parent / f"{directory.name}_damaged" / str(step)

    def move() -> None:
      if target.exists():
        target.rmtree()
      target.parent.mkdir(parents=True, exist_ok=True)
      (directory / str(step)).rename(target)

    distributed.main_only(move, f"mae_jax_checkpoint_{step}_moved_aside")
    self.manager.reload()
    return os.fspath(target)

  def is_due(self, step: int) -> bool:
    """Whether the regular schedule saves at `step`."""
    return self.every_steps > 0 and step % self.every_steps == 0

  def maybe_save(self, step: int, state: Any, force: bool = False) -> bool:
    """Saves at every `every_steps` steps, or when forced (the end of a stage)."""
    if not force and not self.is_due(step):
      return False
    if self.manager.latest_step() == step:
      return False
    # One save in flight at a time: overlapping async saves of close steps were seen to race in
    # Orbax's finalisation ("No ArrayMetadata found"). The write still overlaps training.
    self.wait()
    return self.manager.save(step, args=ocp.args.StandardSave(state), force=True)

  def wait(self) -> None:
    """Blocks until the async save in flight (if any) is on disk."""
    self.manager.wait_until_finished()

  def close(self) -> None:
    """Waits for the save in flight and stops Orbax's threads; a second call does nothing."""
    if self._open:
      self._open = False
      self.manager.wait_until_finished()
      self.manager.close()


def export_params(directory: str, params: Any, model: dict[str, Any]) -> None:
  """Writes `params` as an Orbax checkpoint plus a JSON description of the model.

  This is the format `config.<stage>.init_from` reads (weights.restore_export).
  """
  directory = absolute(directory)
  with ocp.StandardCheckpointer() as ckptr:
    ckptr.save(os.path.join(directory, PARAMS_DIR), params, force=True)
  if distributed.is_main():   # the params save above is collective; this file is single-copy
    epath.Path(directory, MODEL_JSON).write_text(json.dumps(model, indent=2))
