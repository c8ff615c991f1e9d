"""Runs the real entry point with a TFDS dataset mocked (no download).

  python -m tests.mock_main DATASET NUM_EXAMPLES SPLITS DATA_DIR -- <mae_jax.main flags>

SPLITS is comma-separated (e.g. train,test). The flags should include
--config.data.data_dir=DATA_DIR so the mocked files are the ones read.
"""

import sys

from absl import app

from mae_jax import main
from tests.helpers import mock_tfds

if __name__ == "__main__":
  dataset, num, splits, data_dir, sep, *flags = sys.argv[1:]
  assert sep == "--", __doc__
  with mock_tfds(dataset, data_dir, int(num), tuple(splits.split(","))):
    app.run(main.main, argv=[sys.argv[0], *flags])
