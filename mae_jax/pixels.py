"""The input pipeline's pixels -> the model's input, inside the jitted step.

The tf.data pipelines hand over pixels on PIL's 0-255 scale: uint8 where they are whole
numbers (pretrain and linear-probe crops, evaluation: rounded after resizing, as PIL stores a
resized image), float32 where an augmentation made them fractional (fine-tune's random erasing
noise and mixup/cutmix). The ImageNet normalisation (x / 255 - mean) / std runs here, on the
accelerator, where XLA fuses it into the patch embedding's input, rather than as passes over
every image on the host's few cores; and uint8 batches move a quarter of the bytes to the device.
"""

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np


def normalize(images: jax.Array | np.ndarray, mean: Sequence[float], std: Sequence[float],
              ) -> jax.Array:
  """uint8 or float (..., C) pixels in [0, 255] -> float32 (..., C) (x / 255 - mean) / std."""
  scale = 1.0 / (255.0 * np.asarray(std, np.float32))
  offset = -np.asarray(mean, np.float32) / np.asarray(std, np.float32)
  return jnp.asarray(images).astype(jnp.float32) * scale + offset
