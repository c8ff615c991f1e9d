"""scikit-learn's handwritten digits: a real image-classification dataset that needs no network.

1,797 grayscale 8x8 images (ink 0..16) of the digits 0-9, split once with a fixed stratified 80/20
split (train 1,437 / test 360). Images are served as uint8 RGB upsampled to 32x32 with a bilinear
kernel. Not bicubic: bicubic rings around the strokes of such tiny images, and norm_pix_loss
(which scales every patch to unit variance) turns that faint ringing into noise-like targets
that no model can predict. The pipeline's resize takes them on to the model's resolution.
"""

import functools

import numpy as np

from mae_jax.data.tfsetup import tf

SPLITS = ("train", "test")
_TEST_FRACTION = 0.2
_SPLIT_SEED = 0      # fixed: the split is part of the dataset's definition, not of an experiment
_MAX_INK = 16        # load_digits stores pixel intensities in 0..16
SIZE = 32            # served resolution (4x the native 8x8)


@functools.lru_cache(maxsize=None)
def digits_arrays() -> dict[str, tuple[np.ndarray, np.ndarray]]:
  """{split: (images uint8 (N, 32, 32, 3), labels int32 (N,))}, read-only, in a fixed order."""
  # Imported here so that importing the image sources does not pay for scikit-learn.
  from sklearn.datasets import load_digits  # pylint: disable=g-import-not-at-top
  from sklearn.model_selection import train_test_split  # pylint: disable=g-import-not-at-top

  digits = load_digits()
  gray = digits.images[..., None].astype(np.float32) * (255.0 / _MAX_INK)
  gray = tf.image.resize(gray, (SIZE, SIZE), method="bilinear").numpy()
  gray = np.round(np.clip(gray, 0, 255)).astype(np.uint8)
  rgb = np.repeat(gray, 3, axis=-1)
  labels = digits.target.astype(np.int32)
  x_train, x_test, y_train, y_test = train_test_split(
      rgb, labels, test_size=_TEST_FRACTION, stratify=labels, random_state=_SPLIT_SEED)
  arrays = {"train": (x_train, y_train), "test": (x_test, y_test)}
  for images, split_labels in arrays.values():
    # The cache hands out the same arrays to every caller; nobody may edit them in place.
    images.setflags(write=False)
    split_labels.setflags(write=False)
  return arrays


def num_classes() -> int:
  """Number of digit classes (10)."""
  return int(np.unique(digits_arrays()["train"][1]).size)


def digits_dataset(split: str) -> tf.data.Dataset:
  """Fixed-order {"image": uint8 (32, 32, 3), "label": int32} examples of `split`.

  split: "train" or "test".
  """
  if split not in SPLITS:
    raise ValueError(f"digits has splits {SPLITS}, not {split!r}")
  images, labels = digits_arrays()[split]
  return tf.data.Dataset.from_tensor_slices({"image": images, "label": labels})
