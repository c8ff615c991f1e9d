"""Input data, a module per kind of source, all behind one protocol (`base.DataSource`):

  * images: `sources` (digits, image folders, TFDS incl. `tiny_imagenet`) and their tf.data
    pipelines (`pipeline`, with `decoding`, `augment`, `randaugment`, `resize`);
  * segmentation: `seg_sources`, `seg_pipeline`; series: `series`; tables: `tables`;
    volumes: `volumes`.

Importing this package imports no TensorFlow: the series, table and volume modules run
without it. The image and segmentation modules import TF through `tfsetup`, which keeps it off
GPUs/TPUs, and register mae_jax's TFDS builders when a TFDS dataset can be loaded (`tfds_prep`).
"""

import importlib
from typing import Any

# Older callers read the image pipeline's names off the package: resolved on first use, so that
# importing the package stays free of TensorFlow.
_LAZY = {
    "Augment": "mae_jax.data.augment",
    "crop_and_flip_draws": "mae_jax.data.crops",
    "epoch_permutation": "mae_jax.data.schedule",
    "eval_batches": "mae_jax.data.pipeline",
    "num_train_steps_per_epoch": "mae_jax.data.pipeline",
    "random_resized_crop_windows": "mae_jax.data.crops",
    "streams": "mae_jax.data.reading",
    "train_batches": "mae_jax.data.pipeline",
    "train_schedule": "mae_jax.data.schedule",
    "DatasetUnavailableError": "mae_jax.errors",
    "get_source": "mae_jax.data.sources",
    "source_for": "mae_jax.data.sources",
    "Source": "mae_jax.data.sources",
}


def __getattr__(name: str) -> Any:
  if name in _LAZY:
    return getattr(importlib.import_module(_LAZY[name]), name)
  raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
