"""Test helpers: load the real config files, never copies of them."""

import contextlib
import importlib.util
import os

import ml_collections
import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = os.path.join(REPO, "configs")
CONFIG_FILES = sorted(f for f in os.listdir(CONFIGS) if f.endswith(".py") and not f.startswith("_"))


def load_config(name: str, arg: str | None = None) -> ml_collections.ConfigDict:
  """configs/<name> with its `get_config(arg)`, as `--config=configs/<name>:<arg>` loads it."""
  spec = importlib.util.spec_from_file_location(name[:-3], os.path.join(CONFIGS, name))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg) if arg else module.get_config()


def as_pil_stores_it(resized: np.ndarray) -> np.ndarray:
  """A float resize result -> uint8, clipped and rounded half up as PIL's 8-bit resize does."""
  return np.floor(np.clip(resized, 0, 255) + 0.5).astype(np.uint8)


@contextlib.contextmanager
def mock_tfds(name: str, data_dir: str, num_examples: int, splits: tuple[str, ...]):
  """`tfds.testing.mock_data` for builder `name` with `num_examples` random examples per split.

  tensorflow-datasets ships no mock metadata for these datasets, so we write the
  builder's real features with splits of the mocked size into `data_dir` first.
  """
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  from mae_jax.data import tfds_prep  # noqa: F401  (registers our builders)

  builder = tfds.builder(name, data_dir=data_dir)
  builder.info.set_splits(tfds.core.SplitDict([
      tfds.core.SplitInfo(name=split, shard_lengths=[num_examples], num_bytes=0)
      for split in splits]))
  os.makedirs(builder.data_dir, exist_ok=True)
  builder.info.write_to_directory(builder.data_dir)
  with tfds.testing.mock_data(num_examples=num_examples, data_dir=data_dir,
                              policy=tfds.testing.MockPolicy.USE_FILES):
    yield data_dir


def damage_checkpoint(step_dir: str, how: str) -> None:
  """Truncates ("truncate") or deletes every data file of a checkpoint step."""
  # Every data file of the step: OCDBT may leave data files that its index no longer reads
  # (written, then superseded, in an order that varies from run to run), so damaging only the
  # biggest file sometimes went unnoticed by a correct restore.
  files = [os.path.join(d, f) for d, _, fs in os.walk(step_dir) for f in fs]
  data = [f for f in files if os.path.basename(os.path.dirname(f)) == "d"]
  assert data, files
  for path in data:
    if how == "truncate":
      with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)
    else:
      os.remove(path)
