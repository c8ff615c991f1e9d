"""Entry point: python -m mae_jax.main --config=configs/digits.py --workdir=DIR [--config.a.b=v].

Runs the stages of the config (pretrain, linprobe, finetune), resuming whatever a
previous run of the same command left in DIR.

Multi-process (TPU pod slices, GPU clusters): run the same command in every process.
On Cloud TPU VMs and under SLURM the processes find each other by themselves; elsewhere
pass --coordinator_address=HOST:PORT --num_processes=N --process_id=I (see
mae_jax/distributed.py). DIR must then be one path every process sees (GCS, NFS).
"""

import sys

from absl import app, flags, logging
from ml_collections import config_flags

from mae_jax import distributed, experiment

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file (configs/*.py[:arg]).",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics and summary.json.")
_DISTRIBUTED = flags.DEFINE_enum(
    "distributed", "auto", distributed.MODES,
    "Start jax.distributed: auto = when the flags below are given or a SLURM job / Cloud TPU VM "
    "is detected; on = always (JAX detects the cluster); off = single process.")
_COORDINATOR = flags.DEFINE_string("coordinator_address", None,
                                   "HOST:PORT of process 0's coordinator service.")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Processes in the job.", lower_bound=1)
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "This process's index, 0..N-1.", lower_bound=0)
flags.mark_flags_as_required(["config", "workdir"])


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)   # Orbax logs every save at INFO
  distributed.initialize(_DISTRIBUTED.value, _COORDINATOR.value, _NUM_PROCESSES.value,
                         _PROCESS_ID.value)
  # Imported here: mae_jax.data brings TensorFlow, which --help should not wait for.
  from mae_jax.data import DatasetUnavailableError  # pylint: disable=g-import-not-at-top
  try:
    experiment.run(_CONFIG.value, _WORKDIR.value)
  except DatasetUnavailableError as err:
    # A missing dataset is the user's to fix, not a bug: the message, without a traceback.
    sys.exit(f"mae_jax: {err}")


if __name__ == "__main__":
  app.run(main)
