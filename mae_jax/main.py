"""Entry point: mae-jax --config=configs/digits.py --workdir=DIR [--config.a.b=v].

`mae-jax` is `python -m mae_jax.main`. --config takes a config file (configs/*.py[:arg]) or,
from any directory, a shipped config's bare name (--config=digits:smoke).

Runs the stages of the config (pretrain, linprobe, finetune), resuming whatever a
previous run of the same command left in DIR.

Multi-process (TPU pod slices, GPU clusters): run the same command in every process.
On Cloud TPU VMs and under SLURM the processes find each other by themselves; elsewhere
pass --coordinator_address=HOST:PORT --num_processes=N --process_id=I (see
mae_jax/distributed.py). DIR must then be one path every process sees (GCS, NFS).
"""

import sys

from mae_jax import allocator

if __name__ == "__main__":
  allocator.reexec()   # before JAX is imported; see allocator.py

from absl import app, flags, logging  # noqa: E402
from ml_collections import config_flags

from mae_jax import cli_args, distributed, experiment, preemption
from mae_jax.errors import Preempted, UserError

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Experiment config file (configs/*.py[:arg]).", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None,
                                "Directory for checkpoints, metrics and summary.json.")
_DISTRIBUTED = flags.DEFINE_enum(
    "distributed", "auto", distributed.MODES,
    "Start jax.distributed: auto = when the flags below are given or a SLURM job / Cloud TPU VM "
    "is detected; on = always (JAX detects the cluster); off = single process.")
_COORDINATOR = flags.DEFINE_string("coordinator_address", None,
                                   "HOST:PORT of process 0's coordinator service.")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Processes in the job.", lower_bound=1)
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "This process's index, 0..N-1.",
                                   lower_bound=0)
flags.mark_flags_as_required(["config", "workdir"])


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)   # Orbax logs every save at INFO
  distributed.initialize(_DISTRIBUTED.value, _COORDINATOR.value, _NUM_PROCESSES.value,
                         _PROCESS_ID.value)
  preemption.install()   # after distributed start-up: with several processes JAX owns SIGTERM
  failure = None
  try:
    experiment.run(_CONFIG.value, _WORKDIR.value)
  except Preempted as stop:
    distributed.echo(str(stop))   # a checkpoint of this step is on disk: a clean exit
  except UserError as err:
    # The user's to fix, not a bug: one line naming what to change, no traceback.
    failure = f"mae_jax: error: {err}"
  # Exiting outside the except block frees the failed run's frames (and its tf.data iterators)
  # first; at interpreter shutdown TensorFlow would complain about them.
  if failure:
    sys.exit(failure)


def run(argv: list[str]) -> None:
  """The command line `argv` (argv[0] = program), with shipped configs found by bare name."""
  cli_args.show_flags_in_help(__name__, argv[0])
  app.run(main, argv=cli_args.resolve_config_flags(argv), flags_parser=cli_args.parse_flags)


if __name__ == "__main__":
  run(sys.argv)
