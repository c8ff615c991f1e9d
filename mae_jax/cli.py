"""The console scripts `pip install` puts on PATH (pyproject.toml, [project.scripts]).

  mae-jax            = python -m mae_jax.main         (training: the stages of a config)
  mae-jax-convert    = python -m mae_jax.convert      (official / HF weights in and out)
  mae-jax-visualize  = python -m mae_jax.cli visualize (reconstruction grids; visualize.py)
  mae-jax-bench      = the benchmarks in bench/ (package mae_jax_bench)
  mae-jax-prepare    = python -m mae_jax.prepare      (image folders into array_record shards)
  mae-jax-sweep      = python -m mae_jax.sweep        (a config at many design choices)
  mae-jax-predict    = python -m mae_jax.predict      (label maps for new images)

Each entry imports its module only when called: `mae-jax` first re-executes itself with a
faster host allocator (allocator.py), which must happen before JAX is imported.
"""

import sys

from mae_jax import allocator


def main() -> None:
  allocator.reexec()
  from mae_jax import main as entry  # pylint: disable=g-import-not-at-top  (imports JAX)
  entry.run(sys.argv)


def convert() -> None:
  from mae_jax import convert as entry  # pylint: disable=g-import-not-at-top
  entry.main(sys.argv[1:])


def visualize() -> None:
  """mae-jax-visualize --checkpoint=PATH --config=CONFIG --out=DIR: reconstructions.png of any
  MAE with its decoder (visualize.py lists what PATH may be) on the config's eval images."""
  import json  # pylint: disable=g-import-not-at-top
  from absl import app, flags, logging  # pylint: disable=g-import-not-at-top
  from ml_collections import config_flags  # pylint: disable=g-import-not-at-top
  from mae_jax import cli_args  # pylint: disable=g-import-not-at-top
  from mae_jax.errors import UserError  # pylint: disable=g-import-not-at-top

  config = config_flags.DEFINE_config_file("config", None, "Experiment config (configs/*.py).")
  checkpoint = flags.DEFINE_string("checkpoint", None,
                                   "Workdir, checkpoints folder, .pth, HF dir or MAE export.")
  out = flags.DEFINE_string("out", None, "Folder for reconstructions.png.")

  def run(argv: list[str]) -> None:
    logging.set_verbosity(logging.WARNING)   # Orbax logs at INFO
    if len(argv) > 1:
      raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if not (config.value and checkpoint.value and out.value):
      raise app.UsageError("--config, --checkpoint and --out are required")
    from mae_jax.tasks import images  # pylint: disable=g-import-not-at-top
    try:
      images.validate_visualize(config.value)
      source = images.image_source(config.value)
      print(json.dumps(images.reconstructions(config.value, checkpoint.value, out.value, source)))
    except UserError as err:
      raise SystemExit(f"mae-jax-visualize: error: {err}") from None

  cli_args.show_flags_in_help(__name__, sys.argv[0])
  app.run(run, argv=cli_args.resolve_config_flags(sys.argv))


def sweep() -> None:
  # No JAX here: the sweep's runs are processes of their own (mae-jax), which pick the allocator.
  from mae_jax import sweep as entry  # pylint: disable=g-import-not-at-top
  entry.run(sys.argv)


def predict() -> None:
  allocator.reexec()
  from mae_jax import predict as entry  # pylint: disable=g-import-not-at-top
  entry.run(sys.argv)


def bench() -> None:
  allocator.reexec()
  from mae_jax_bench import run as entry  # pylint: disable=g-import-not-at-top
  entry.main(sys.argv)


if __name__ == "__main__":
  # python -m mae_jax.cli COMMAND ARGS: COMMAND is main, convert, visualize or bench.
  command = sys.argv.pop(1) if len(sys.argv) > 1 else ""
  if command not in ("main", "convert", "visualize", "bench"):
    sys.exit("usage: python -m mae_jax.cli {main,convert,visualize,bench} ARGS")
  globals()[command]()
