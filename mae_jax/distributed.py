"""Multi-process runs: starting JAX's distributed runtime, and which process speaks.

One process runs per host (TPU VM worker, GPU node) or per GPU (SLURM), all executing
the same program on one global device mesh. `initialize` must run before anything
touches a JAX backend; after it `jax.devices()` lists every device of the job and
`jax.process_index()` names this process. Everything that writes a file meant to
exist once (metrics, result.json, summary.json) or prints asks `is_main()` first;
Orbax checkpoints are written collectively by all processes.
"""

import importlib.util
import os
from typing import Callable, TypeVar

import jax
import numpy as np
from jax.experimental import multihost_utils

T = TypeVar("T")

MODES = ("auto", "on", "off")
# Device files a Cloud TPU VM exposes (v2-v4: /dev/accel*, v5e and later: /dev/vfio).
_TPU_DEVICE_FILES = ("/dev/accel0", "/dev/vfio/0")


def cluster_detected() -> str | None:
  """Names the multi-process environment JAX can configure itself from, or None.

  SLURM with more than one task, or a Cloud TPU VM (libtpu installed and a TPU attached;
  JAX then reads the worker list from the VM's metadata, and a one-host slice is a job
  of one process).
  """
  tasks = os.environ.get("SLURM_NTASKS") or os.environ.get("SLURM_NPROCS")
  if tasks and int(tasks) > 1 and "SLURM_PROCID" in os.environ:
    return f"SLURM ({tasks} tasks)"
  if importlib.util.find_spec("libtpu") is not None and any(
      os.path.exists(p) for p in _TPU_DEVICE_FILES):
    return "Cloud TPU VM"
  return None


def initialize(mode: str = "auto", coordinator_address: str | None = None,
               num_processes: int | None = None, process_id: int | None = None) -> bool:
  """Starts jax.distributed when `mode` asks for it; returns whether it did.

  mode "on": always (JAX fills whatever of address / count / id is None from the
  environment: Cloud TPU, SLURM, Open MPI, Kubernetes); "off": never; "auto": when any
  of the three is given, or `cluster_detected()` finds a cluster.
  """
  if mode not in MODES:
    raise ValueError(f"distributed mode must be one of {MODES}, got {mode!r}")
  explicit = (coordinator_address, num_processes, process_id) != (None, None, None)
  if mode == "off" or (mode == "auto" and not explicit and cluster_detected() is None):
    return False
  # Cross-process collectives on the CPU backend need an implementation (the default has
  # none); TPU and GPU ignore this setting. It is what makes a local multi-process test run.
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(coordinator_address=coordinator_address,
                             num_processes=num_processes, process_id=process_id)
  return True


def is_main() -> bool:
  """True in the one process that prints and writes the run's single-copy files."""
  return jax.process_index() == 0


def main_first(fn: Callable[[], T], what: str) -> T:
  """fn() in process 0, then, once it has returned there, in every other process.

  For work on a shared disk that must happen once, e.g. preparing a TFDS dataset: the other
  processes then find it done instead of racing to write the same files.
  """
  if jax.process_count() == 1:
    return fn()
  result = fn() if is_main() else None
  multihost_utils.sync_global_devices(what)
  return result if is_main() else fn()


def main_only(fn: Callable[[], None], what: str) -> None:
  """fn() in process 0 alone; every process returns once it has returned there."""
  if is_main():
    fn()
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices(what)


def everywhere(flag: bool) -> bool:
  """Whether `flag` holds in every process; a collective, so every process must ask."""
  if jax.process_count() == 1:
    return flag
  return bool(np.all(multihost_utils.process_allgather(np.array(flag, np.int32))))


def echo(message: str) -> None:
  """print() from process 0 only: every process runs the same loop and would repeat it."""
  if is_main():
    print(message, flush=True)
