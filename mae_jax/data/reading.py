"""Where training examples come from (config.data.cache): a split read into memory, or
streamed from disk by index.

  * memory (`cache_split`): the split is read once into host memory as one flat buffer plus
    offsets, and examples are gathered by index. Sources that serve encoded images (TFDS image
    features, image folders) are kept encoded, JPEG bytes ~10x smaller than pixels (Oxford
    pets: ~0.4 GB instead of ~2 GB decoded); sources of raw pixels (digits) are kept decoded.
    Fast to start on small splits; host memory grows with the split.
  * stream (`stream_split`): each example's bytes are read when its turn comes, by index, from
    the source's random-access store: image files by path, or TFDS splits prepared as
    array_record (`tfds.data_sources`). Host memory stays a few batches and the store's index,
    whatever the split's size (ImageNet-1k: ~150 GB of JPEGs); each process reads only its
    share.
Either way an example is decoded with its crop fused into JPEG decoding (decoding.py), from the
same bytes with the same window: the two give the same pixels, bit for bit. Neither reads a
file's pixels ahead of training, so an image that does not decode is found, and skipped, there
(pipeline.py).
"""

from typing import Callable

import numpy as np

from mae_jax.data import decoding
from mae_jax.data.sources import Source
from mae_jax.data.tfsetup import tf

_STATIC_BATCH = 1024  # examples per read while caching a split whose images share one shape

# index () int64, window (4,) int32 (top, left, height, width) -> uint8 crop (h, w, 3).
ReadCrop = Callable[[tf.Tensor, tf.Tensor], tf.Tensor]
# indices (k,) int64 -> encoded bytes (k,), int32 labels (k,), int32 sizes (k, 2) (h, w).
ReadMany = Callable[[tf.Tensor], tuple[tf.Tensor, tf.Tensor, tf.Tensor]]


def streams(source: Source, split: str, cache: str, cache_max_gb: float) -> bool:
  """Whether training reads `split` from disk by index (config.data.cache: "memory", "stream",
  or "auto": stream what has a random-access store and is larger than `cache_max_gb`)."""
  if cache == "memory" or source.random_access is None:
    return False
  if cache == "stream":
    return True
  size = source.random_access(split).num_bytes()
  stream = size > cache_max_gb * 2**30
  print(f"{source.name}/{split}: {size / 2**30:.2f} GB of encoded images, "
        f"{'streamed from disk' if stream else 'read into memory'} "
        f"(config.data.cache_max_gb={cache_max_gb})", flush=True)
  return stream


def stream_split(source: Source, split: str) -> ReadMany:
  """read(indices (k,)) -> (encoded bytes (k,), int32 labels (k,), int32 sizes (k, 2)), from
  `source`'s random-access store; sizes from the files' headers (decoding.header).

  Memory: the store's index (a path per file, or the open array_record readers); no example is
  kept once it is decoded.
  """
  store = source.random_access(split) if source.random_access else None
  if store is None:
    raise ValueError(f"{source.name}/{split} has no random-access store to stream from")

  def read(indices):
    encoded, labels = store.read(indices)
    sizes = tf.map_fn(lambda e: decoding.header(e)["size"], encoded,
                      fn_output_signature=tf.TensorSpec([2], tf.int32))
    return encoded, labels, sizes

  return read


def cache_split(source: Source, split: str) -> tuple[ReadCrop, tf.Tensor, np.ndarray]:
  """Reads `split` into memory: (read_crop, int32 labels (N,), int64 image sizes (N, 2)).

  `read_crop(index, window)` gives the uint8 crop `window` = (top, left, height, width) of
  example `index`: decoded from the cached encoded bytes when the source serves them (crop fused
  into JPEG decoding), else sliced from the cached pixels. Sizes are (height, width), read from
  the files' headers without decoding (decoding.header). Peak host memory is about twice the
  cache.
  """
  encoded = source.load_encoded(split)
  if encoded is not None:
    # A header that does not parse (a JPEG cut inside it, in a folder that was not scanned)
    # drops its example here; it is kept as no bytes, which training fails to decode and skips.
    ds = encoded.enumerate().map(
        lambda i, ex: {**ex, "index": i, **decoding.header(ex["image"])},
        num_parallel_calls=tf.data.AUTOTUNE).ignore_errors()
  else:
    ds = source.load(split)
    if ds.element_spec["image"].shape.is_fully_defined():
      ds = ds.batch(_STATIC_BATCH)  # same-shape images: read many at a time, much faster
  chunks, shapes, labels, jpeg = [], [], [], []
  expected = source.num_examples(split)
  for ex in ds.prefetch(tf.data.AUTOTUNE).as_numpy_iterator():
    if encoded is not None:
      _add_dropped(ex["index"] - len(chunks), chunks, shapes, labels, jpeg)
      chunks.append(ex["image"])
      shapes.append(ex["size"])
      jpeg.append(ex["is_jpeg"])
    else:
      images = ex["image"] if ex["image"].ndim == 4 else ex["image"][None]
      chunks.extend(image.reshape(-1) for image in images)
      shapes.extend(image.shape for image in images)
    labels.append(np.reshape(ex["label"], -1))
  if encoded is not None:
    _add_dropped(expected - len(chunks), chunks, shapes, labels, jpeg)
  labels = np.concatenate(labels).astype(np.int32)
  if len(labels) != expected:
    raise ValueError(f"{source.name}/{split} yielded {len(labels)} examples, but its metadata "
                     f"says {expected}")
  labels = tf.constant(labels)
  image_sizes = np.array(shapes, np.int64)[:, :2]   # (height, width [, channels]) rows

  if encoded is not None:
    files = tf.constant(np.array(chunks, dtype=object))
    del chunks
    all_jpeg = all(jpeg)
    return (lambda index, window: decoding.decode_and_crop(files[index], window,
                                                           all_jpeg=all_jpeg),
            labels, image_sizes)

  sizes = np.array([chunk.size for chunk in chunks], np.int64)
  offsets = tf.constant(np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64))
  sizes = tf.constant(sizes)
  buffer = np.concatenate(chunks)
  del chunks  # frees the per-image arrays before TF copies the buffer
  buffer = tf.constant(buffer)
  shapes = tf.constant(np.array(shapes, np.int64))

  def read_crop(index, window):
    image = tf.reshape(buffer[offsets[index]:offsets[index] + sizes[index]], shapes[index])
    return decoding.crop(image, window)
  return read_crop, labels, image_sizes


def _add_dropped(count: int, chunks: list, shapes: list, labels: list, jpeg: list) -> None:
  """Appends `count` examples whose header did not parse: no bytes, size 1 x 1, label 0."""
  chunks.extend([b""] * count)
  shapes.extend([np.ones(2, np.int64)] * count)
  labels.extend([np.zeros(1, np.int32)] * count)
  jpeg.extend([False] * count)
