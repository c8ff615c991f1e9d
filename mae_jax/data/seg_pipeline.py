"""tf.data pipelines for semantic segmentation: image and label map transformed together.

Training (mmsegmentation's ADE20K pipeline): random resize keeping the aspect ratio to a scale
of (long, short) x U(ratio range), a random crop that no single class fills beyond
`cat_max_ratio` (up to 10 tries), horizontal flip, photometric distortion of the image only,
padding to the crop (image 0, label IGNORE). Labels are only ever resized nearest-neighbour.
Every draw is stateless, keyed on (seed, stream position): resumed runs and any number of
shards see the same examples.

Evaluation: each image resized (bilinear, aspect kept) to fit an S x S canvas and padded to it;
its label map stays on the host at the annotation's own resolution ("host_" keys: the loop does
not send them to the devices), where the logits are brought back to it (`restore_logits`).
"""

from typing import Any, Iterator

import numpy as np
import tensorflow as tf

from mae_jax.data.pipeline import train_schedule
from mae_jax.data.seg_sources import SegSource
from mae_jax.errors import UserError
from mae_jax.losses import IGNORE_LABEL

_CROP_TRIES = 10
_INVALID = tf.errors.InvalidArgumentError   # bound now: a generator closed at exit still has it


class DataError(UserError, ValueError):
  """An example the pipeline cannot use (its file is named in the message)."""


def _guard(iterator: Iterator[Any]) -> Iterator[Any]:
  """The iterator, with a failed check on an example's files as one DataError line."""
  try:
    yield from iterator
  except _INVALID as err:
    lines = [l for l in str(err.message).splitlines() if ": " in l and "/" in l]
    raise DataError((lines[0] if lines else str(err.message).splitlines()[0]).strip()) from None


def rescale_size(hw: tf.Tensor, scale: tuple[int, int], ratio: tf.Tensor) -> tf.Tensor:
  """mmcv's rescale with keep_ratio: (h, w) scaled by the largest factor that fits
  (long, short) * ratio, rounded half up."""
  hw = tf.cast(hw, tf.float32)
  long_edge, short_edge = scale[0] * ratio, scale[1] * ratio
  factor = tf.minimum(long_edge / tf.reduce_max(hw), short_edge / tf.reduce_min(hw))
  return tf.cast(tf.floor(hw * factor + 0.5), tf.int32)


def _crop_window(label: tf.Tensor, crop: int, seed: tf.Tensor, cat_max_ratio: float
                 ) -> tf.Tensor:
  """(top, left) of a crop x crop window (clipped to the image) of `label`, tried up to 10
  times until no class covers more than cat_max_ratio of its labelled pixels and at least two
  classes show (mmsegmentation's RandomCrop)."""
  hw = tf.shape(label)
  margin = tf.maximum(hw - crop, 0)
  u = tf.random.stateless_uniform([_CROP_TRIES, 2], seed)
  offsets = tf.cast(tf.floor(u * tf.cast(margin + 1, tf.float32)), tf.int32)
  if cat_max_ratio >= 1.0:
    return offsets[0]

  def acceptable(offset):
    window = label[offset[0]:offset[0] + crop, offset[1]:offset[1] + crop]
    values = tf.reshape(tf.cast(window, tf.int32), [-1])
    values = tf.boolean_mask(values, values != IGNORE_LABEL)
    counts = tf.math.bincount(values, minlength=256)
    present = tf.reduce_sum(tf.cast(counts > 0, tf.int32))
    total = tf.maximum(tf.reduce_sum(counts), 1)
    return (present > 1) & (tf.cast(tf.reduce_max(counts), tf.float32)
                            < cat_max_ratio * tf.cast(total, tf.float32))

  def body(i, chosen, found):
    ok = tf.logical_not(found) & acceptable(offsets[i])
    return i + 1, tf.where(ok, offsets[i], chosen), found | ok

  # The last try is kept when none passes, as mmsegmentation does.
  _, chosen, found = tf.while_loop(lambda i, c, f: (i < _CROP_TRIES) & tf.logical_not(f), body,
                                   (0, offsets[0], False))
  return tf.where(found, chosen, offsets[_CROP_TRIES - 1])


def photometric(image: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
  """mmsegmentation's PhotoMetricDistortion on float (H, W, 3) pixels in [0, 255]: brightness
  +-32, contrast x[0.5, 1.5] (first or last), saturation x[0.5, 1.5], hue +-18 degrees of 180,
  each with probability 1/2."""
  u = tf.random.stateless_uniform([9], seed)
  image = tf.where(u[0] < 0.5, image + (u[1] * 64 - 32), image)
  image = tf.clip_by_value(image, 0, 255)
  contrast = lambda x: tf.where(u[2] < 0.5, tf.clip_by_value(x * (0.5 + u[3]), 0, 255), x)  # noqa: E731
  contrast_first = u[4] < 0.5
  image = tf.cond(contrast_first, lambda: contrast(image), lambda: image)
  rgb = image / 255.0
  rgb = tf.cond(u[5] < 0.5, lambda: tf.image.adjust_saturation(rgb, 0.5 + u[6]), lambda: rgb)
  rgb = tf.cond(u[7] < 0.5, lambda: tf.image.adjust_hue(rgb, (u[8] * 36 - 18) / 180), lambda: rgb)
  image = tf.clip_by_value(rgb * 255.0, 0, 255)
  return tf.cond(contrast_first, lambda: image, lambda: contrast(image))


def augment(example: dict[str, tf.Tensor], seed: tf.Tensor, *, crop: int,
            scale: tuple[int, int], ratio_range: tuple[float, float], cat_max_ratio: float,
            hflip: bool, distort: bool) -> dict[str, tf.Tensor]:
  """One training example -> {"image": uint8 (crop, crop, 3), "label": uint8 (crop, crop)}."""
  seeds = tf.random.experimental.stateless_split(seed, 4)
  image, label = example["image"], example["label"]
  ratio = tf.random.stateless_uniform([], seeds[0], ratio_range[0], ratio_range[1])
  size = rescale_size(tf.shape(label), scale, ratio)
  image = tf.image.resize(image, size, "bilinear")
  label = tf.image.resize(label[..., None], size, "nearest")[..., 0]
  top, left = tf.unstack(_crop_window(label, crop, seeds[1], cat_max_ratio))
  image = image[top:top + crop, left:left + crop]
  label = label[top:top + crop, left:left + crop]
  if hflip:
    flip = tf.random.stateless_uniform([], seeds[2]) < 0.5
    image = tf.cond(flip, lambda: image[:, ::-1], lambda: image)
    label = tf.cond(flip, lambda: label[:, ::-1], lambda: label)
  if distort:
    image = photometric(image, seeds[3])
  h, w = tf.shape(label)[0], tf.shape(label)[1]
  image = tf.pad(image, [[0, crop - h], [0, crop - w], [0, 0]])
  label = tf.pad(label, [[0, crop - h], [0, crop - w]], constant_values=IGNORE_LABEL)
  image = tf.cast(tf.round(tf.clip_by_value(image, 0, 255)), tf.uint8)
  return {"image": tf.ensure_shape(image, [crop, crop, 3]),
          "label": tf.ensure_shape(label, [crop, crop])}


def train_batches(source: SegSource, split: str, *, batch_size: int, crop: int,
                  scale: tuple[int, int], ratio_range: tuple[float, float],
                  cat_max_ratio: float, hflip: bool, distort: bool, seed: int,
                  start_step: int = 0, num_shards: int = 1, shard_index: int = 0
                  ) -> Iterator[dict[str, np.ndarray]]:
  """Endless batches {"image": uint8 (B, crop, crop, 3), "label": uint8 (B, crop, crop)} of
  this shard, from global step `start_step` on."""
  read = source.reader(split)
  schedule = tf.data.Dataset.from_generator(
      lambda: train_schedule(source.num_examples(split), seed=seed, batch_size=batch_size,
                             num_shards=num_shards, shard_index=shard_index,
                             start_step=start_step),
      output_signature=(tf.TensorSpec([None], tf.int64), tf.TensorSpec([None], tf.int64)))
  ds = schedule.flat_map(lambda i, p: tf.data.Dataset.from_tensor_slices((i, p)))
  ds = ds.map(lambda i, p: augment(read(i), tf.stack([tf.constant(seed, tf.int64), p]),
                                   crop=crop, scale=scale, ratio_range=ratio_range,
                                   cat_max_ratio=cat_max_ratio, hflip=hflip, distort=distort),
              num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  ds = ds.batch(batch_size, drop_remainder=True).prefetch(2)
  return _guard(ds.as_numpy_iterator())


def fit_size(hw: tf.Tensor, size: int) -> tf.Tensor:
  """(h, w) scaled so that the longer side is `size`, aspect kept, rounded half up."""
  hw = tf.cast(hw, tf.float32)
  return tf.cast(tf.floor(hw * (size / tf.reduce_max(hw)) + 0.5), tf.int32)


def eval_batches(source: SegSource, split: str, *, batch_size: int, size: int,
                 num_shards: int = 1, shard_index: int = 0) -> Iterator[dict[str, Any]]:
  """One pass over `split` in its fixed order, as this shard's padded batches:
  {"image": uint8 (B, size, size, 3), "mask": float32 (B,) (0 = padding slot), and on the host:
  "host_label": [uint8 (H, W)], "host_hw": int32 (B, 2) the resized image's extent on the
  canvas, "host_name": [str]}. Shard k holds examples i with (i % G) // B == k (G = B * shards);
  every shard yields ceil(n / G) batches."""
  n = source.num_examples(split)
  global_batch = batch_size * num_shards

  def prepare(ex):
    hw = fit_size(tf.shape(ex["label"]), size)
    image = tf.image.resize(ex["image"], hw, "bilinear")
    image = tf.pad(image, [[0, size - hw[0]], [0, size - hw[1]], [0, 0]])
    image = tf.cast(tf.round(tf.clip_by_value(image, 0, 255)), tf.uint8)
    return {"image": tf.ensure_shape(image, [size, size, 3]), "hw": hw, "label": ex["label"],
            "name": ex["name"]}

  ds = tf.data.Dataset.range(n)
  if num_shards > 1:
    ds = ds.filter(lambda i: (i % global_batch) // batch_size == shard_index)
  ds = ds.map(lambda i: prepare(source.reader(split)(i)), num_parallel_calls=tf.data.AUTOTUNE,
              deterministic=True).prefetch(2 * batch_size)
  mine = int(((np.arange(n) % global_batch) // batch_size == shard_index).sum())
  num_batches = -(-n // global_batch)

  def batches() -> Iterator[dict[str, Any]]:
    buffer = []
    for ex in ds.as_numpy_iterator():
      buffer.append(ex)
      if len(buffer) == batch_size:
        yield _collate(buffer, batch_size, size)
        buffer = []
    emitted = mine // batch_size
    if buffer:
      yield _collate(buffer, batch_size, size)
      emitted += 1
    for _ in range(num_batches - emitted):
      yield _collate([], batch_size, size)

  return _guard(batches())


def _collate(examples: list[dict[str, Any]], batch_size: int, size: int) -> dict[str, Any]:
  pad = batch_size - len(examples)
  image = np.zeros((batch_size, size, size, 3), np.uint8)
  hw = np.zeros((batch_size, 2), np.int32)
  for i, ex in enumerate(examples):
    image[i], hw[i] = ex["image"], ex["hw"]
  return {"image": image, "mask": np.array([1.0] * len(examples) + [0.0] * pad, np.float32),
          "host_hw": hw, "host_label": [ex["label"] for ex in examples],
          "host_name": [ex["name"].decode() for ex in examples]}


def restore_logits(logits: np.ndarray, hw: np.ndarray, canvas: int, out_hw: tuple[int, int]
                   ) -> np.ndarray:
  """One image's logits (h, w, K) on the padded canvas -> (H, W, K) at the annotation's
  resolution: resized to the canvas, cropped to the image's extent `hw`, resized to `out_hw`
  (bilinear, half-pixel centres, as mmsegmentation's resize of seg logits)."""
  x = tf.convert_to_tensor(logits[None], tf.float32)
  x = tf.image.resize(x, (canvas, canvas), "bilinear")[:, :hw[0], :hw[1]]
  return tf.image.resize(x, out_hw, "bilinear")[0].numpy()


def resize_nearest(ids: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
  """A label map (H, W) resized to `hw` nearest-neighbour (labels are never interpolated)."""
  return tf.image.resize(ids[..., None], hw, "nearest")[..., 0].numpy()
