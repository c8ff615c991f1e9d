"""TensorFlow for the input pipeline, kept off GPUs and TPUs.

TensorFlow only feeds tf.data; JAX owns the accelerators and their memory. Every data module
that uses TF imports it from here (`from mae_jax.data.tfsetup import tf`), so the accelerators
are hidden before TF creates its devices, whichever of those modules is imported first.
"""

import tensorflow as tf

__all__ = ["tf"]


def _hide_accelerators_from_tensorflow() -> None:
  for kind in ("GPU", "TPU"):
    try:
      tf.config.set_visible_devices([], kind)
    except (RuntimeError, ValueError):
      # RuntimeError: TF already initialised its devices (too late, nothing to do);
      # ValueError: this TF build does not know the device type.
      pass


# Importing TF (and tensorflow_datasets) creates no devices, so hiding them here is in time.
_hide_accelerators_from_tensorflow()
