"""TFDS datasets on disk: preparing them (or saying what to fetch) and reading a split in order.

Both the image sources (sources.py) and the segmentation sources (seg_sources.py) read TFDS
datasets through here. Importing this module registers mae_jax's own TFDS builders
(tiny_imagenet.py), so `tfds.builder("tiny_imagenet")` works wherever a TFDS dataset is loaded.
"""

import os
import posixpath

import requests
import tensorflow_datasets as tfds

from mae_jax.data import tiny_imagenet  # noqa: F401  (registers the TFDS builder)
from mae_jax.data.tfsetup import tf
from mae_jax.errors import DatasetUnavailableError

# One connection probe without retries tells an offline machine in seconds; TFDS's downloader
# would retry for minutes before giving up.
_PROBE_TIMEOUT_S = 10


def prepare_tfds(builder: tfds.core.DatasetBuilder, name: str) -> None:
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


def load_tfds_split(builder: tfds.core.DatasetBuilder, split: str, decode: bool = True,
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
