"""Command-line helpers of the console scripts: shipped configs by bare name, and a --help that
lists the program's own flags whichever way it was started."""

import os
import re
import sys

from absl import flags
from ml_collections import config_flags

from mae_jax import config_lib


def resolve_config_flags(argv: list[str], flag: str = "config", subdir: str = "") -> list[str]:
  """argv with `--config=NAME[:args]` (or `--config NAME`) turned into the shipped file's path
  (of configs/`subdir`, if given)."""
  out, prefix = list(argv), f"--{flag}="
  for i, item in enumerate(out):
    if item.startswith(prefix):
      out[i] = prefix + config_lib.resolve_config(item[len(prefix):], subdir)
    elif item == f"--{flag}" and i + 1 < len(out):
      out[i + 1] = config_lib.resolve_config(out[i + 1], subdir)
  return out


def show_flags_in_help(module_name: str, program: str) -> None:
  """Makes `--help` list the flags `module_name` defines when `program` (argv[0]) runs it.

  absl's --help lists the key flags of the program's own file; a console script's file is a
  wrapper that defines none, so the defining module's flags are declared the program's too.
  """
  for flag in flags.FLAGS.get_key_flags_for_module(module_name):
    flags.FLAGS.register_key_flag_for_module(program, flag)


def parse_flags(argv: list[str]) -> list[str]:
  """absl's parsing, but a bad --config (missing file, unknown field, bad value) is one line.

  For the programs whose --config is ml_collections' config-file flag (mae-jax, mae-jax-sweep).
  """
  try:
    rest = flags.FLAGS(argv)
    if flags.FLAGS["config"].present:
      path = config_flags.get_config_filename(flags.FLAGS["config"]).split(":")[0]
      if not os.path.isfile(path):
        sys.exit(f"mae_jax: error: --config: config file {path!r} does not exist (a path, or "
                 f"one of the shipped configs: {', '.join(config_lib.shipped_configs())})")
      flags.FLAGS.config.to_dict()   # a config file that failed to load raises here
    return rest
  except flags.Error as err:
    sys.exit(f"mae_jax: error: {_last_line(str(err))}")
  except (OSError, AttributeError, KeyError, TypeError, ValueError) as err:
    # config_flags reports an unknown --config.x.y field as AttributeError/KeyError.
    text = _last_line(str(err))
    missing = re.search(r"No such file or directory: ('[^']*')", text)
    if isinstance(err, OSError) and missing:
      text = f"config file {missing.group(1)} does not exist"
    if isinstance(err, (AttributeError, KeyError)):
      name = text.strip("'\"")
      given = [a.split("=")[0] for a in argv if a.startswith("--config.") and
               a.split("=")[0].endswith("." + name)]
      text = f"unknown config field {(given or [name])[0]!r}; the config file lists the fields"
    sys.exit(f"mae_jax: error: --config: {text}")


def _last_line(text: str) -> str:
  """A flag error's message without the traceback that config_flags embeds in it."""
  lines = [l.strip() for l in text.splitlines() if l.strip() and not l.startswith("Pass --help")]
  if any(l.startswith("Traceback") for l in lines):
    head, last = lines[0], lines[-1].split(": ", 1)[-1]   # drop the exception's class name
    return f"{head.rstrip(':')}: {last}"
  return " ".join(lines)
