"""Datasets: where examples come from, as fixed-order tf.data streams of (image, label).

`get_source(name)` knows "digits" (offline, scikit-learn) and any TFDS image-classification
dataset, "oxford_iiit_pet" being the one the configs use. A `Source` only promises a
deterministic order; shuffling, augmentation and batching are the pipeline's job.
"""

import dataclasses
import functools
from typing import Callable

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from mae_jax.data import digits

_KNOWN_NAMES = ("'digits', 'oxford_iiit_pet', or any TFDS image-classification dataset name "
                "(e.g. 'cifar10', 'oxford_flowers102', 'imagenet_resized/32x32')")


@dataclasses.dataclass(frozen=True)
class Source:
  """An image-classification dataset with named splits.

  `loader(split)` returns a tf.data.Dataset of {"image": uint8 (H, W, 3), "label": int32 scalar}
  whose order is fixed (same examples in the same order on every call and every machine).
  """
  name: str
  num_classes: int
  split_sizes: dict[str, int]
  train_split: str
  eval_split: str
  loader: Callable[[str], tf.data.Dataset] = dataclasses.field(repr=False, compare=False)

  def num_examples(self, split: str) -> int:
    """Number of examples in `split`; ValueError naming the valid splits if there is none."""
    if split not in self.split_sizes:
      raise ValueError(f"{self.name} has no split {split!r}; its splits are "
                       f"{sorted(self.split_sizes)}")
    return self.split_sizes[split]

  def load(self, split: str) -> tf.data.Dataset:
    """The examples of `split` in their fixed order (see the class docstring)."""
    self.num_examples(split)
    return self.loader(split)


def get_source(dataset: str, data_dir: str | None = None) -> Source:
  """The `Source` for `dataset`: "digits" or a TFDS image-classification name.

  TFDS datasets are read from (and, with network access, prepared in) `data_dir`, or TFDS's
  default ($TFDS_DATA_DIR, else ~/tensorflow_datasets) when it is None.
  """
  if dataset == "digits":
    arrays = digits.digits_arrays()
    return Source(name="digits", num_classes=digits.num_classes(),
                  split_sizes={s: len(arrays[s][1]) for s in digits.SPLITS},
                  train_split="train", eval_split="test", loader=digits.digits_dataset)
  return _tfds_source(dataset, data_dir)


def _tfds_source(name: str, data_dir: str | None) -> Source:
  """A TFDS dataset with "image" and "label" features; sizes and classes from its metadata."""
  try:
    builder = tfds.builder(name, data_dir=data_dir)
  except tfds.core.registered.DatasetNotFoundError as err:
    raise ValueError(f"Unknown dataset {name!r}: use {_KNOWN_NAMES}.") from err
  features = builder.info.features
  if ("image" not in features or "label" not in features
      or not isinstance(features["label"], tfds.features.ClassLabel)):
    raise ValueError(f"TFDS dataset {name!r} is not an image-classification dataset: it needs "
                     f"an 'image' and a class 'label' feature, it has {sorted(features.keys())}.")
  if features["image"].np_dtype != np.uint8:
    raise ValueError(f"TFDS dataset {name!r} has {features['image'].np_dtype} images; "
                     "only uint8 images are supported.")
  _prepare(builder, name)

  split_sizes = {split: info.num_examples for split, info in builder.info.splits.items()}
  eval_split = next((s for s in ("test", "validation") if s in split_sizes), None)
  if "train" not in split_sizes or eval_split is None:
    raise ValueError(f"TFDS dataset {name!r} needs a 'train' split and a 'test' or 'validation' "
                     f"split; it has {sorted(split_sizes)}.")
  return Source(name=name, num_classes=features["label"].num_classes, split_sizes=split_sizes,
                train_split="train", eval_split=eval_split,
                loader=functools.partial(_load_tfds_split, builder))


def _prepare(builder: tfds.core.DatasetBuilder, name: str) -> None:
  """Downloads and prepares `builder` unless a prepared copy is already in its data_dir."""
  if builder.is_prepared():
    return
  try:
    builder.download_and_prepare()
  except OSError as err:  # requests' and urllib's connection errors are OSErrors
    raise RuntimeError(
        f"Could not download TFDS dataset {name!r} (no network access?). Put a prepared copy "
        f"under --config.data.data_dir (or $TFDS_DATA_DIR; looked in {builder.data_dir}), or "
        f"the raw archives in the TFDS manual dir <data_dir>/downloads/manual.") from err


def _load_tfds_split(builder: tfds.core.DatasetBuilder, split: str) -> tf.data.Dataset:
  """`split` of a prepared TFDS dataset as fixed-order RGB (image, label) examples."""
  # Decode only image and label: other features (pets' segmentation masks) would cost time.
  decoders = tfds.decode.PartialDecoding({"image": True, "label": True})
  # Reading the files one after another (cycle length 1) gives TFDS's canonical example order,
  # independent of TFDS's default interleaving.
  read_config = tfds.ReadConfig(interleave_cycle_length=1)
  ds = builder.as_dataset(split=split, shuffle_files=False, decoders=decoders,
                          read_config=read_config)
  ds = ds.map(lambda ex: {"image": _to_rgb(ex["image"]), "label": tf.cast(ex["label"], tf.int32)},
              num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  options = tf.data.Options()
  options.deterministic = True
  return ds.with_options(options)


def _to_rgb(image: tf.Tensor) -> tf.Tensor:
  """(H, W, C) uint8 with C in {1, 3, 4} -> (H, W, 3): gray is repeated, alpha dropped."""
  channels = image.shape[-1]
  if channels == 3:
    return image
  if channels == 1:
    return tf.tile(image, [1, 1, 3])
  if channels == 4:
    return image[..., :3]
  # Channel count only known per example (a TFDS Image feature with shape (None, None, None)).
  rgb = tf.cond(tf.shape(image)[-1] == 1, lambda: tf.tile(image, [1, 1, 3]),
                lambda: image[..., :3])
  return tf.ensure_shape(rgb, [None, None, 3])
