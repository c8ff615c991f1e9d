"""Datasets: where examples come from, as fixed-order tf.data streams of (image, label).

`get_source(dataset)` (config.data.dataset) takes one of
  * "digits": scikit-learn's handwritten digits (offline);
  * "imagefolder:/path/to/root": your own images, root/<split>/<class>/<image> (imagefolder.py);
  * "tfds:NAME" or plain "NAME": any TFDS image-classification dataset, e.g. "oxford_iiit_pet",
    "tiny_imagenet" (registered by mae_jax.data), "cifar10".
A `Source` only promises a deterministic order; shuffling, augmentation and batching are the
pipeline's job. Sources whose files hold encoded images (JPEG, PNG) also serve the encoded bytes,
so the training pipeline can keep the split compressed in memory and decode only the crop.
"""

import dataclasses
import functools
import os
import posixpath
from typing import Callable

import numpy as np
import requests
import tensorflow as tf
import tensorflow_datasets as tfds

from mae_jax.data import decoding
from mae_jax.data import digits
from mae_jax.data import imagefolder
from mae_jax.errors import ConfigError, UserError

_KNOWN_NAMES = ("'digits', 'imagefolder:/path/to/root', 'oxford_iiit_pet', 'tiny_imagenet', or "
                "any TFDS image-classification dataset name as 'tfds:NAME' or 'NAME' (e.g. "
                "'cifar10', 'oxford_flowers102', 'imagenet_resized/32x32')")
_TFDS_PREFIX = "tfds:"
# One connection probe without retries tells an offline machine in seconds; TFDS's downloader
# would retry for minutes before giving up.
_PROBE_TIMEOUT_S = 10


class DatasetUnavailableError(UserError, RuntimeError):
  """A dataset that cannot be read here; the message says which files to put where."""


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
  # Optional: split -> the same examples with "image" as encoded bytes (tf.string).
  encoded_loader: Callable[[str], tf.data.Dataset] | None = dataclasses.field(
      default=None, repr=False, compare=False)

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

  def load_encoded(self, split: str) -> tf.data.Dataset | None:
    """`load(split)` with encoded image bytes, or None if this source holds decoded pixels."""
    self.num_examples(split)
    return None if self.encoded_loader is None else self.encoded_loader(split)


def get_source(dataset: str, data_dir: str | None = None) -> Source:
  """The `Source` for `dataset` (see the module docstring for the names it takes).

  TFDS datasets are read from (and, with network access, prepared in) `data_dir`, or TFDS's
  default ($TFDS_DATA_DIR, else ~/tensorflow_datasets) when it is None. A dataset that is
  neither here nor downloadable raises DatasetUnavailableError saying what to put where.
  """
  if dataset == "digits":
    arrays = digits.digits_arrays()
    return Source(name="digits", num_classes=digits.num_classes(),
                  split_sizes={s: len(arrays[s][1]) for s in digits.SPLITS},
                  train_split="train", eval_split="test", loader=digits.digits_dataset)
  if dataset.startswith(imagefolder.PREFIX):
    return _imagefolder_source(dataset[len(imagefolder.PREFIX):])
  return _tfds_source(dataset.removeprefix(_TFDS_PREFIX), data_dir)


def _imagefolder_source(root: str) -> Source:
  """root/<split>/<class>/<image> files (imagefolder.py), served encoded and decoded."""
  try:
    classes, splits = imagefolder.scan(root)
    eval_split = imagefolder.eval_split(splits)
  except FileNotFoundError as err:
    raise DatasetUnavailableError(str(err)) from err

  def encoded(split: str) -> tf.data.Dataset:
    return imagefolder.encoded_dataset(*splits[split])

  def decoded(split: str) -> tf.data.Dataset:
    return encoded(split).map(
        lambda ex: {"image": decoding.decode(ex["image"]), "label": ex["label"]},
        num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)

  return Source(name=f"{imagefolder.PREFIX}{root}", num_classes=len(classes),
                split_sizes={split: len(labels) for split, (_, labels) in splits.items()},
                train_split=imagefolder.TRAIN_SPLIT, eval_split=eval_split, loader=decoded,
                encoded_loader=encoded)


def _tfds_source(name: str, data_dir: str | None) -> Source:
  """A TFDS dataset with "image" and "label" features; sizes and classes from its metadata."""
  try:
    builder = tfds.builder(name, data_dir=data_dir)
  except tfds.core.registered.DatasetNotFoundError as err:
    raise ConfigError(f"config.data.dataset: unknown dataset {name!r}: "
                      f"use {_KNOWN_NAMES}.") from err
  features = builder.info.features
  if ("image" not in features or "label" not in features
      or not isinstance(features["label"], tfds.features.ClassLabel)):
    raise ConfigError(f"TFDS dataset {name!r} is not an image-classification dataset: it needs "
                     f"an 'image' and a class 'label' feature, it has {sorted(features.keys())}.")
  if features["image"].np_dtype != np.uint8:
    raise ConfigError(f"TFDS dataset {name!r} has {features['image'].np_dtype} images; "
                     "only uint8 images are supported.")
  _prepare(builder, name)

  split_sizes = {split: info.num_examples for split, info in builder.info.splits.items()}
  eval_split = next((s for s in ("test", "validation") if s in split_sizes), None)
  if "train" not in split_sizes or eval_split is None:
    raise ConfigError(f"TFDS dataset {name!r} needs a 'train' split and a 'test' or 'validation' "
                     f"split; it has {sorted(split_sizes)}.")
  encoded = None
  if isinstance(features["image"], tfds.features.Image):  # stored as encoded PNG/JPEG bytes
    encoded = functools.partial(_load_tfds_split, builder, decode=False)
  return Source(name=name, num_classes=features["label"].num_classes, split_sizes=split_sizes,
                train_split="train", eval_split=eval_split,
                loader=functools.partial(_load_tfds_split, builder), encoded_loader=encoded)


def _prepare(builder: tfds.core.DatasetBuilder, name: str) -> None:
  """Downloads and prepares `builder` unless a prepared copy is already in its data_dir.

  Offline, fails within seconds (not after TFDS's minutes of retries) with a
  DatasetUnavailableError that names the files to fetch and where to put them.
  """
  if builder.is_prepared():
    return
  manual_dir = os.path.join(builder.data_dir_root, "downloads", "manual")
  urls = {info.filename or posixpath.basename(url): url
          for url, info in (builder.url_infos or {}).items()}
  files = "".join(f"\n  {manual_dir}/{file}  (from {url})" for file, url in urls.items())
  message = (
      f"TFDS dataset {name!r} is not prepared in {builder.data_dir} and could not be "
      f"downloaded (no network access?). Either put a prepared copy there (the folder "
      f"{name}/<version>/ from another machine's TFDS data dir, or set --config.data.data_dir "
      f"to a data dir that holds one, e.g. $TFDS_DATA_DIR or gs://tfds-data/datasets on a "
      f"TPU VM), or put the raw downloads in the TFDS manual dir:"
      + (files or f"\n  {manual_dir}/  (see the TFDS catalog page of {name!r})"))
  missing = [url for file, url in urls.items()
             if not os.path.exists(os.path.join(manual_dir, file))]
  if missing:
    try:
      requests.head(missing[0], timeout=_PROBE_TIMEOUT_S, allow_redirects=False)
    except (requests.ConnectionError, requests.Timeout) as err:
      raise DatasetUnavailableError(message) from err
  try:
    builder.download_and_prepare()
  except DatasetUnavailableError:
    raise
  except (OSError, tfds.download.DownloadError) as err:
    # requests' and urllib's connection errors are OSErrors.
    raise DatasetUnavailableError(message) from err


def _load_tfds_split(builder: tfds.core.DatasetBuilder, split: str, decode: bool = True,
                     ) -> tf.data.Dataset:
  """`split` of a prepared TFDS dataset as fixed-order (image, label) examples.

  Images are uint8 RGB, or with `decode=False` the stored encoded bytes (tf.string).
  """
  # Decode only image and label: other features (pets' segmentation masks) would cost time.
  decoders = tfds.decode.PartialDecoding(
      {"image": True, "label": True},
      decoders=None if decode else {"image": tfds.decode.SkipDecoding()})
  # Reading the files one after another (cycle length 1) gives TFDS's canonical example order,
  # independent of TFDS's default interleaving.
  read_config = tfds.ReadConfig(interleave_cycle_length=1)
  ds = builder.as_dataset(split=split, shuffle_files=False, decoders=decoders,
                          read_config=read_config)
  to_rgb = _to_rgb if decode else (lambda image: image)
  ds = ds.map(lambda ex: {"image": to_rgb(ex["image"]), "label": tf.cast(ex["label"], tf.int32)},
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
