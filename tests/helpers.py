"""Test helpers: load the real config files, never copies of them."""

import importlib.util
import os

import ml_collections

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = os.path.join(REPO, "configs")
CONFIG_FILES = sorted(f for f in os.listdir(CONFIGS) if f.endswith(".py"))


def load_config(name: str, arg: str | None = None) -> ml_collections.ConfigDict:
  """configs/<name> with its `get_config(arg)`, as `--config=configs/<name>:<arg>` loads it."""
  spec = importlib.util.spec_from_file_location(name[:-3], os.path.join(CONFIGS, name))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg) if arg else module.get_config()
