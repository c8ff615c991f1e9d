"""tf.data pipelines for semantic segmentation: image and label map transformed together.

Training (mmsegmentation's ADE20K pipeline): random resize keeping the aspect ratio to a scale
of (long, short) x U(ratio range) (keep_ratio False: to (width, height) = scale x U(ratio
range) exactly, as mmseg's Resize(keep_ratio=False); the TinyImageNet study's 256 x 256), a
random crop that no single class fills beyond `cat_max_ratio` (up to 10 tries), horizontal
flip, photometric distortion of the image only, padding to the crop (image 0, label IGNORE).
Labels are only ever resized nearest-neighbour. Every draw is stateless, keyed on (seed, stream
position): resumed runs and any number of shards see the same examples.

Evaluation: each image resized (bilinear, aspect kept) to fit an S x S canvas and padded to it
(keep_ratio False: resized to S x S);
its label map stays on the host at the annotation's own resolution ("host_" keys: the loop does
not send them to the devices), where the logits are brought back to it (`restore_logits`).
"""

from typing import Any, Iterator

import numpy as np

from mae_jax.data.schedule import train_schedule
from mae_jax.data.seg_sources import SegSource
from mae_jax.data.tfsetup import tf
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


def resized_size(hw: tf.Tensor, scale: tuple[int, int], ratio: tf.Tensor, keep_ratio: bool
                 ) -> tf.Tensor:
  """(h, w) of an image resized to `scale` x ratio: `rescale_size` when keep_ratio, else
  (height, width) = (scale[1], scale[0]) x ratio whatever the image's, rounded half up."""
  if keep_ratio:
    return rescale_size(hw, scale, ratio)
  return tf.cast(tf.floor(tf.constant([scale[1], scale[0]], tf.float32) * ratio + 0.5), tf.int32)


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
            hflip: bool, distort: bool, keep_ratio: bool = True) -> dict[str, tf.Tensor]:
  """One training example -> {"image": uint8 (crop, crop, 3), "label": uint8 (crop, crop)}."""
  seeds = tf.random.experimental.stateless_split(seed, 4)
  image, label = example["image"], example["label"]
  ratio = tf.random.stateless_uniform([], seeds[0], ratio_range[0], ratio_range[1])
  size = resized_size(tf.shape(label), scale, ratio, keep_ratio)
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
                  start_step: int = 0, num_shards: int = 1, shard_index: int = 0,
                  keep_ratio: bool = True) -> Iterator[dict[str, np.ndarray]]:
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
                                   cat_max_ratio=cat_max_ratio, hflip=hflip, distort=distort,
                                   keep_ratio=keep_ratio),
              num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  ds = ds.batch(batch_size, drop_remainder=True).prefetch(2)
  return _guard(ds.as_numpy_iterator())


def fit_size(hw: tf.Tensor, size: int) -> tf.Tensor:
  """(h, w) scaled so that the longer side is `size`, aspect kept, rounded half up."""
  hw = tf.cast(hw, tf.float32)
  return tf.cast(tf.floor(hw * (size / tf.reduce_max(hw)) + 0.5), tf.int32)


def slide_windows(h: int, w: int, crop: int, stride: int) -> list[tuple[int, int, int, int]]:
  """mmsegmentation's sliding windows over an h x w image: (y1, x1, y2, x2), crop x crop
  (smaller where the image is), `stride` apart, the last row and column flush with the edges."""
  rows = max(h - crop + stride - 1, 0) // stride + 1
  cols = max(w - crop + stride - 1, 0) // stride + 1
  boxes = []
  for i in range(rows):
    for j in range(cols):
      y2, x2 = min(i * stride + crop, h), min(j * stride + crop, w)
      boxes.append((max(y2 - crop, 0), max(x2 - crop, 0), y2, x2))
  return boxes


def eval_batches(source: SegSource, split: str, *, batch_size: int, size: int,
                 mode: str = "whole", stride: int = 0, scale: tuple[int, int] = (2048, 512),
                 num_shards: int = 1, shard_index: int = 0, keep_ratio: bool = True
                 ) -> Iterator[dict[str, Any]]:
  """One pass over `split` in its fixed order, as this shard's padded batches of size x size
  pieces: {"image": uint8 (B, size, size, 3), "mask": float32 (B,) (0 = padding slot),
  "host_pieces": [a dict per slot, None for padding]} (see `Stitcher` for the dicts).

  mode "whole": each image resized (aspect kept) so that its longer side is `size`, one piece
  padded to size x size. "slide" (mmsegmentation's slide inference): each image resized as
  mmsegmentation's test Resize to `scale` (long, short), then cut in size x size windows
  `stride` apart (slide_windows), each padded to size x size where the image is smaller.
  keep_ratio False: "whole" resizes each image to size x size, "slide" to (width, height) =
  `scale`. Logits come back to the annotation's own size either way (Stitcher).
  Shard k takes the images i with (i % G) // B == k (G = B * shards); the shards yield the
  same number of batches.
  """
  n = source.num_examples(split)
  global_batch = batch_size * num_shards
  if mode not in ("whole", "slide"):
    raise ValueError(f"eval mode must be 'whole' or 'slide', got {mode!r}")

  def prepare(ex):
    if mode == "whole":
      hw = (fit_size(tf.shape(ex["label"]), size) if keep_ratio
            else tf.constant([size, size], tf.int32))
    else:
      hw = resized_size(tf.shape(ex["label"]), scale, tf.constant(1.0), keep_ratio)
    image = tf.cast(tf.round(tf.clip_by_value(tf.image.resize(ex["image"], hw, "bilinear"),
                                              0, 255)), tf.uint8)
    return {"image": image, "label": ex["label"], "name": ex["name"]}

  ds = tf.data.Dataset.range(n)
  if num_shards > 1:
    ds = ds.filter(lambda i: (i % global_batch) // batch_size == shard_index)
  read = source.reader(split)
  ds = ds.map(lambda i: (i, prepare(read(i))), num_parallel_calls=tf.data.AUTOTUNE,
              deterministic=True).prefetch(4)

  def pieces() -> Iterator[tuple[np.ndarray, dict[str, Any]]]:
    for index, ex in ds.as_numpy_iterator():
      image = ex["image"]
      h, w = image.shape[:2]
      boxes = [(0, 0, h, w)] if mode == "whole" else slide_windows(h, w, size, stride)
      for k, (y1, x1, y2, x2) in enumerate(boxes):
        piece = np.zeros((size, size, 3), np.uint8)
        piece[:y2 - y1, :x2 - x1] = image[y1:y2, x1:x2]
        item = {"index": int(index), "box": (y1, x1, y2, x2), "done": k == len(boxes) - 1}
        if k == 0:
          item.update(label=ex["label"], name=ex["name"].decode(), image=image)
        yield piece, item

  def batches() -> Iterator[dict[str, Any]]:
    buffer, emitted = [], 0
    for piece in pieces():
      buffer.append(piece)
      if len(buffer) == batch_size:
        yield _collate(buffer, batch_size, size)
        buffer, emitted = [], emitted + 1
    if buffer:
      yield _collate(buffer, batch_size, size)
      emitted += 1
    # Every shard runs as many eval steps as the busiest one (each step is collective).
    for _ in range(_num_batches(source, split, mode, size, stride, scale, batch_size,
                                num_shards, keep_ratio) - emitted):
      yield _collate([], batch_size, size)

  return _guard(batches())


def _num_batches(source: SegSource, split: str, mode: str, size: int, stride: int,
                 scale: tuple[int, int], batch_size: int, num_shards: int,
                 keep_ratio: bool = True) -> int:
  """Batches of the busiest shard. Slide mode with several shards reads every label map's
  size once to count the windows; whole mode has one piece per image."""
  n = source.num_examples(split)
  if mode == "whole":
    counts = np.ones(n, np.int64)
  elif num_shards == 1:
    return 0      # nothing to match: the one shard ends when its pieces do
  else:
    read = source.reader(split)
    shapes = tf.data.Dataset.range(n).map(
        lambda i: resized_size(tf.shape(read(i)["label"]), scale, tf.constant(1.0), keep_ratio),
        num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    counts = np.array([len(slide_windows(int(h), int(w), size, stride))
                       for h, w in shapes.as_numpy_iterator()])
  shard = (np.arange(n) % (batch_size * num_shards)) // batch_size
  return max(-(-int(counts[shard == k].sum()) // batch_size) for k in range(num_shards))


def _collate(pieces: list[tuple[np.ndarray, dict[str, Any]]], batch_size: int, size: int
             ) -> dict[str, Any]:
  image = np.zeros((batch_size, size, size, 3), np.uint8)
  for i, (piece, _) in enumerate(pieces):
    image[i] = piece
  items = [item for _, item in pieces]
  return {"image": image,
          "mask": np.array([1.0] * len(items) + [0.0] * (batch_size - len(items)), np.float32),
          "host_pieces": items + [None] * (batch_size - len(items))}


class Stitcher:
  """Puts pieces' logits back together into each image's prediction at its annotation's size.

  A piece dict: "index" (the image's), "box" (y1, x1, y2, x2) on the resized image, "done"
  (its image's last piece); the first piece of an image also has its "label" (H, W) at the
  annotation's resolution, "name" and the resized "image". Logits of a piece (h, w, K) are
  resized to the piece's size x size, cropped to the box, summed where boxes overlap and
  divided by the count (mmsegmentation's slide inference), then the image's logits are resized
  to (H, W) (bilinear, half-pixel centres) before the argmax.
  """

  def __init__(self, size: int):
    self.size = size
    self.open: dict[int, tuple[dict[str, Any], np.ndarray, np.ndarray]] = {}

  def add(self, logits: np.ndarray, piece: dict[str, Any]
          ) -> tuple[dict[str, Any], np.ndarray] | None:
    """-> (the image's first piece, its class ids (H, W) uint8) when `piece` completes it."""
    if "label" in piece:
      h, w = piece["image"].shape[:2]
      self.open[piece["index"]] = (piece, np.zeros((h, w, logits.shape[-1]), np.float32),
                                   np.zeros((h, w, 1), np.float32))
    first, total, count = self.open[piece["index"]]
    y1, x1, y2, x2 = piece["box"]
    up = tf.image.resize(tf.convert_to_tensor(logits[None], tf.float32),
                         (self.size, self.size), "bilinear")[0].numpy()
    total[y1:y2, x1:x2] += up[:y2 - y1, :x2 - x1]
    count[y1:y2, x1:x2] += 1.0
    if not piece["done"]:
      return None
    del self.open[piece["index"]]
    full = tf.image.resize(total[None] / count[None], first["label"].shape[:2], "bilinear")[0]
    return first, np.argmax(full.numpy(), axis=-1).astype(np.uint8)


def resize_nearest(ids: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
  """A label map (H, W) resized to `hw` nearest-neighbour (labels are never interpolated)."""
  return tf.image.resize(ids[..., None], hw, "nearest")[..., 0].numpy()


def resize_bilinear_image(image: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
  """uint8 (H, W, 3) -> float32 (h, w, 3) pixels, bilinear."""
  return tf.image.resize(image, hw, "bilinear").numpy()
