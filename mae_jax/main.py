"""Entry point: python -m mae_jax.main --config=configs/digits.py --workdir=DIR [--config.a.b=v].

Runs the stages of the config (pretrain, linprobe, finetune), resuming whatever a
previous run of the same command left in DIR.
"""

import sys

from absl import app, flags, logging
from ml_collections import config_flags

from mae_jax import experiment

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file (configs/*.py[:arg]).",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics and summary.json.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)   # Orbax logs every save at INFO
  # Imported here: mae_jax.data brings TensorFlow, which --help should not wait for.
  from mae_jax.data import DatasetUnavailableError  # pylint: disable=g-import-not-at-top
  try:
    experiment.run(_CONFIG.value, _WORKDIR.value)
  except DatasetUnavailableError as err:
    # A missing dataset is the user's to fix, not a bug: the message, without a traceback.
    sys.exit(f"mae_jax: {err}")


if __name__ == "__main__":
  app.run(main)
