"""Input data: datasets (`sources`: digits, image folders, TFDS incl. `tiny_imagenet`) and tf.data
pipelines (`pipeline`, with `decoding`, `augment`, `randaugment`).

This package is the only place mae_jax imports TensorFlow. TensorFlow only feeds the input
pipeline, so it is kept off GPUs/TPUs on import: JAX owns the accelerators and their memory.
"""

import tensorflow as tf

from mae_jax.data.augment import Augment
from mae_jax.data.pipeline import crop_and_flip_draws
from mae_jax.data.pipeline import epoch_permutation
from mae_jax.data.pipeline import eval_batches
from mae_jax.data.pipeline import num_train_steps_per_epoch
from mae_jax.data.pipeline import random_resized_crop_windows
from mae_jax.data.pipeline import streams
from mae_jax.data.pipeline import train_batches
from mae_jax.data.pipeline import train_schedule
from mae_jax.data.sources import DatasetUnavailableError
from mae_jax.data.sources import get_source
from mae_jax.data.sources import source_for
from mae_jax.data.sources import Source
from mae_jax.data import tiny_imagenet  # noqa: F401  (registers the TFDS builder)

__all__ = ["Augment", "DatasetUnavailableError", "Source", "crop_and_flip_draws",
           "epoch_permutation", "eval_batches", "get_source", "num_train_steps_per_epoch",
           "random_resized_crop_windows", "source_for", "streams", "train_batches",
           "train_schedule"]


def _hide_accelerators_from_tensorflow() -> None:
  for kind in ("GPU", "TPU"):
    try:
      tf.config.set_visible_devices([], kind)
    except (RuntimeError, ValueError):
      # RuntimeError: TF already initialised its devices (too late, nothing to do);
      # ValueError: this TF build does not know the device type.
      pass


# Importing the modules above creates no TF devices, so hiding them here is still in time.
_hide_accelerators_from_tensorflow()
