"""SIGTERM -> save and stop: spot TPU VMs and SLURM send it before they take the machine.

Single process: our own handler sets a flag that the training loop reads after each step.
Multi-process: JAX's preemption sync manager (started by `jax.distributed.initialize`) owns
SIGTERM and agrees with every process on one step to stop at; Orbax's
`CheckpointManager.reached_preemption` asks it, so all processes save the same step.
"""

import signal
import threading

import jax

_requested = threading.Event()
_installed = False


def _on_sigterm(signum, frame) -> None:  # pylint: disable=unused-argument
  _requested.set()


def install() -> None:
  """Catches SIGTERM in this (single) process; a no-op when JAX's multi-process runtime owns it."""
  global _installed
  if _installed or jax.process_count() > 1:
    return
  signal.signal(signal.SIGTERM, _on_sigterm)
  _installed = True


def reached(step: int, manager=None) -> bool:
  """True when training should save `step` and stop."""
  if jax.process_count() > 1 and manager is not None:
    return bool(manager.reached_preemption(step))
  return _requested.is_set()
