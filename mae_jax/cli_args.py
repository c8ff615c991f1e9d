"""Command-line helpers of the console scripts: shipped configs by bare name, and a --help that
lists the program's own flags whichever way it was started."""

from absl import flags

from mae_jax import config_lib


def resolve_config_flags(argv: list[str], flag: str = "config") -> list[str]:
  """argv with `--config=NAME[:args]` (or `--config NAME`) turned into the shipped file's path."""
  out, prefix = list(argv), f"--{flag}="
  for i, item in enumerate(out):
    if item.startswith(prefix):
      out[i] = prefix + config_lib.resolve_config(item[len(prefix):])
    elif item == f"--{flag}" and i + 1 < len(out):
      out[i + 1] = config_lib.resolve_config(out[i + 1])
  return out


def show_flags_in_help(module_name: str, program: str) -> None:
  """Makes `--help` list the flags `module_name` defines when `program` (argv[0]) runs it.

  absl's --help lists the key flags of the program's own file; a console script's file is a
  wrapper that defines none, so the defining module's flags are declared the program's too.
  """
  for flag in flags.FLAGS.get_key_flags_for_module(module_name):
    flags.FLAGS.register_key_flag_for_module(program, flag)
