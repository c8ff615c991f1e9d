"""The input pipeline's pixels -> the model's input, inside the jitted step.

The tf.data pipelines hand over pixels on PIL's 0-255 scale: uint8 where they are whole
numbers (pretrain and linear-probe crops, evaluation: rounded after resizing, as PIL stores a
resized image), float32 where an augmentation made them fractional (fine-tune's random erasing
noise and mixup/cutmix). The ImageNet normalisation (x / 255 - mean) / std runs here, on the
accelerator, where XLA fuses it into the patch embedding's input, rather than as passes over
every image on the host's few cores; and uint8 batches move a quarter of the bytes to the device.

The same goes for the resize's last transpose: with config.data.batch_layout "WCH" the
pipeline hands each image over as its resize leaves it, (W, C, H), and the transpose to
(H, W, C) happens here, fused with the normalisation (~10% of the host's CPU per image).
"""

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np


Pixels = jax.Array | np.ndarray

# The image layouts the pipeline hands over (mae_jax.data.resize.LAYOUTS): the permutation of
# an image's three axes that makes (H, W, C) of it.
_TO_HWC = {"HWC": (0, 1, 2), "WCH": (2, 0, 1)}
LAYOUTS = tuple(_TO_HWC)


def image_shape(size: int, layout: str = "HWC") -> tuple[int, int, int]:
  """The shape of a size x size RGB image with its axes in `layout` order."""
  return tuple(3 if a == "C" else size for a in layout)


def to_hwc(images: Pixels, layout: str = "HWC") -> Pixels:
  """(..., *image axes in `layout` order) -> (..., H, W, C); NumPy in, NumPy out."""
  if layout not in _TO_HWC:
    raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
  xp = _array_module(images)
  images = xp.asarray(images)
  lead = tuple(range(images.ndim - 3))
  return xp.transpose(images, lead + tuple(len(lead) + a for a in _TO_HWC[layout]))


def normalize(images: Pixels, mean: Sequence[float], std: Sequence[float],
              layout: str = "HWC") -> Pixels:
  """uint8 or float pixels in [0, 255], (..., H, W, C) or as `layout` orders an image's axes
  -> float32 (..., H, W, C) (x / 255 - mean) / std. NumPy arrays stay NumPy (host-side
  users such as the scikit-learn baseline); anything else becomes a jax.Array."""
  scale = 1.0 / (255.0 * np.asarray(std, np.float32))
  offset = -np.asarray(mean, np.float32) / np.asarray(std, np.float32)
  return to_hwc(images, layout).astype(np.float32) * scale + offset


def _array_module(images: Pixels):
  return np if isinstance(images, np.ndarray) else jnp
