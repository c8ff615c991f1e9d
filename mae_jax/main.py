"""Entry point: python -m mae_jax.main --config=configs/digits.py --workdir=DIR [--config.a.b=v].

Runs the stages of the config (pretrain, linprobe, finetune), resuming whatever a
previous run of the same command left in DIR.
"""

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
  experiment.run(_CONFIG.value, _WORKDIR.value)


if __name__ == "__main__":
  app.run(main)
