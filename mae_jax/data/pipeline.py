"""tf.data input pipelines: endless augmented training batches and one padded evaluation pass.

Training order and augmentation are pure functions of (seed, step):
  * epoch e visits the examples in `epoch_permutation(seed, e, n)`; global batch i of the epoch is
    that permutation's slice [i*G, (i+1)*G) (G = batch_size * num_shards, remainder dropped), and
    shard k takes its contiguous part [k*batch_size, (k+1)*batch_size) of the global batch;
  * every random choice for an example (crop window, flip, RandAugment, erasing) uses stateless
    TF random ops seeded by (seed, position), the example's position in the global stream
    (step * G + slot); mixup/cutmix draws once per batch, seeded by (seed, step).
So `start_step=s` rebuilds the stream from step s directly (no skipped example is read), shards
of one global batch agree with an unsharded run (except mixup/cutmix, which pairs examples
within each shard's batch, as every GPU of the official loader does), and a resumed run sees
the same batches.

Multi-host: each process passes num_shards = process count and shard_index = its index, reads
and augments only its share of every global batch, and the trainer assembles the global batch
from the process-local ones (jax.make_array_from_process_local_data).

Where examples come from (config.data.cache, `streams`):
  * memory: the split is read once into host memory as one flat buffer plus offsets, and
    examples are gathered by index. Sources that serve encoded images (TFDS image features,
    image folders) are kept encoded, JPEG bytes ~10x smaller than pixels (Oxford pets: ~0.4 GB
    instead of ~2 GB decoded); sources of raw pixels (digits) are kept decoded. Fast to start
    on small splits; host memory grows with the split.
  * stream: each example's bytes are read when its turn comes, by index, from the source's
    random-access store: image files by path, or TFDS splits prepared as array_record
    (`tfds.data_sources`). Host memory stays a few batches and the store's index, whatever the
    split's size (ImageNet-1k: ~150 GB of JPEGs); each process reads only its share.
Either way an example is decoded with its crop fused into JPEG decoding (decoding.py), from the
same bytes with the same window: the two give the same pixels, bit for bit.

Why this route and not Grain: the schedule above already makes order and augmentation pure
functions of (seed, step), so a resumed run needs no iterator state to restore; what streaming
needs is only random access by index, which array_record (the format Grain itself reads) and
files give to tf.data directly. Keeping tf.data keeps its parallel decode, the fused
decode-and-crop and the resize that match PIL, for both paths. Evaluation reads the split once
in its fixed order and needs no cache.
"""

import math
import os
from typing import Iterator

import numpy as np
import tensorflow as tf

from mae_jax import allocator
from mae_jax import pixels
from mae_jax.data import augment
from mae_jax.data import decoding
from mae_jax.data import randaugment
from mae_jax.data import resize
from mae_jax.data.sources import Source

Batch = dict[str, np.ndarray]

_CROP_ATTEMPTS = 10   # torchvision's RandomResizedCrop tries 10 windows before its fallback
_STATIC_BATCH = 1024  # examples per read while caching a split whose images share one shape
_CHUNK = 64           # streamed examples read (and their crop windows worked out) at once


def num_train_steps_per_epoch(source: Source, split: str, global_batch: int) -> int:
  """Full global batches in one epoch of `split` (the remainder is dropped); may be 0."""
  if global_batch < 1:
    raise ValueError(f"global_batch must be positive, got {global_batch}")
  return source.num_examples(split) // global_batch


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


def epoch_permutation(seed: int, epoch: int, num_examples: int) -> np.ndarray:
  """The order in which epoch `epoch` visits example indices 0..num_examples-1."""
  return np.random.default_rng([seed, epoch]).permutation(num_examples)


def train_schedule(num_examples: int, *, seed: int, batch_size: int, num_shards: int = 1,
                   shard_index: int = 0, start_step: int = 0,
                   ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
  """This shard's (example indices, stream positions) from `start_step` on, one epoch per item.

  Both arrays are int64 of length (steps left in the epoch) * batch_size; consecutive runs of
  `batch_size` entries are consecutive steps. Endless.
  """
  global_batch = batch_size * num_shards
  steps_per_epoch = num_examples // global_batch
  epoch, first_step = divmod(start_step, steps_per_epoch)
  lo = shard_index * batch_size
  slot = np.arange(lo, lo + batch_size)
  while True:
    order = epoch_permutation(seed, epoch, num_examples)[:steps_per_epoch * global_batch]
    indices = order.reshape(steps_per_epoch, global_batch)[first_step:, lo:lo + batch_size]
    steps = np.arange(epoch * steps_per_epoch + first_step, (epoch + 1) * steps_per_epoch)
    positions = steps[:, None] * global_batch + slot[None, :]
    yield indices.reshape(-1).astype(np.int64), positions.reshape(-1).astype(np.int64)
    epoch, first_step = epoch + 1, 0


def train_batches(source: Source, split: str, *, batch_size: int, image_size: int,
                  crop_scale: tuple[float, float],
                  crop_ratio: tuple[float, float] = (3 / 4, 4 / 3), hflip: bool,
                  seed: int, mean: tuple[float, float, float] | None = None,
                  std: tuple[float, float, float] | None = None,
                  start_step: int = 0, num_shards: int = 1, shard_index: int = 0,
                  options: augment.Augment = augment.Augment(), layout: str = "HWC",
                  stream: bool = False) -> Iterator[Batch]:
  """Endless training batches of this shard, from global step `start_step` on.

  Yields {"image": (batch_size, image_size, image_size, 3) pixels in [0, 255], "label": int32
  (batch_size,)}. Per image: RandomResizedCrop(image_size, crop_scale, crop_ratio, bicubic),
  optional horizontal flip, then `options`' RandAugment or colour jitter and random erasing
  (whose noise is drawn to normalise with `mean` and `std`, the train step's normalisation,
  to N(0, 1); nothing else uses them). Per batch, if
  `options.mixes`: mixup/cutmix, and "label" becomes float32 (batch_size, num_classes) soft
  labels. Images are uint8, rounded after resizing as PIL does, unless `options` augment
  (float32 then); `mae_jax.pixels.normalize` turns either into the model's input. layout
  "WCH": each image as (image_size, 3, image_size), (W, C, H), as the resize leaves it.
  `batch_size` is this shard's share of the global batch batch_size * num_shards. See the
  module docstring for the order and the randomness. `stream`: read each example's bytes from
  the source's random-access store when it is needed (no cache; see the module docstring).
  """
  _check_sharding(batch_size, num_shards, shard_index)
  if not 0 <= seed < 2**63:
    raise ValueError(f"seed must be in [0, 2**63), got {seed}")
  if start_step < 0:
    raise ValueError(f"start_step must be >= 0, got {start_step}")
  if options.random_erase_prob and (mean is None or std is None):
    raise ValueError("random erasing draws its noise to normalise with the train step's mean "
                     "and std: pass both")
  if not 0 < crop_scale[0] <= crop_scale[1]:
    raise ValueError(f"crop_scale must satisfy 0 < min <= max, got {crop_scale}")
  if not 0 < crop_ratio[0] <= crop_ratio[1]:
    raise ValueError(f"crop_ratio must satisfy 0 < min <= max, got {crop_ratio}")
  num_examples = source.num_examples(split)
  global_batch = batch_size * num_shards
  if num_train_steps_per_epoch(source, split, global_batch) < 1:
    raise ValueError(f"{source.name}/{split} has {num_examples} examples, fewer than one global "
                     f"batch of {batch_size} x {num_shards} shards")

  allocator.keep_freed_memory()
  if stream:
    read = _stream_split(source, split)
  else:
    read_crop, labels, sizes = _cache_split(source, split)

  def with_draws(indices, positions):
    # Streamed: windows are worked out once the examples' bytes (and so sizes) have arrived.
    uniforms, flip_u = crop_and_flip_draws(seed, positions)
    return indices, positions, uniforms, flip_u < 0.5

  def fetch(indices, positions, draws, flips):
    # A chunk of examples at once: one read of the store and one numpy call per chunk, not per
    # example; the window arithmetic is per row, so each window is the one the in-memory path
    # computes, bit for bit.
    encoded, labels, sizes = read(indices)
    windows = tf.numpy_function(
        lambda s, u: random_resized_crop_windows(s, u, scale=crop_scale, ratio=crop_ratio),
        [sizes, draws], tf.int32, stateful=False)
    return encoded, labels, positions, tf.ensure_shape(windows, [None, 4]), flips

  def with_windows(indices, positions):
    # Crop windows and flips for a whole epoch at once, ahead of the per-example map. Made
    # there, the draws and torchvision's window arithmetic were ~60 tiny TF ops per example at
    # a few us each, ~0.2 ms of CPU per image, ~7% of decoding, cropping and resizing a photo
    # on a 2-core VM. Here the draws are a loop of 4 ops per example and the
    # arithmetic one numpy pass per epoch; the windows are the same, bit for bit.
    uniforms, flip_u = crop_and_flip_draws(seed, positions)
    windows = tf.numpy_function(
        lambda i, u: random_resized_crop_windows(sizes[i], u, scale=crop_scale, ratio=crop_ratio),
        [indices, uniforms], tf.int32, stateful=False)
    return indices, positions, tf.ensure_shape(windows, [None, 4]), flip_u < 0.5

  schedule = tf.data.Dataset.from_generator(
      lambda: train_schedule(num_examples, seed=seed, batch_size=batch_size,
                             num_shards=num_shards, shard_index=shard_index,
                             start_step=start_step),
      output_signature=(tf.TensorSpec([None], tf.int64), tf.TensorSpec([None], tf.int64)))
  # prefetch: the next epoch's draws are made while this one's examples are processed.
  schedule = schedule.map(with_draws if stream else with_windows).prefetch(1)

  # Whole-number pixels leave as uint8 (a quarter of the bytes to batch, prefetch and move to
  # the device): rounded inside the resize, before its last transpose. RandAugment, jitter,
  # erasing and mixing work on float pixels.
  as_uint8 = not (options.rand_augment_layers or options.color_jitter
                  or options.random_erase_prob or options.mixes)

  # The augmentations work on (H, W, C) images: their batches are transposed to `layout` last.
  image_layout = layout if as_uint8 else "HWC"

  def example(crop, label, position, flip):
    if as_uint8:
      image = resize.bicubic(crop, image_size, image_size, tf.uint8, image_layout)
    else:
      image = _resize(crop, image_size, image_size)
    image = tf.ensure_shape(image, pixels.image_shape(image_size, image_layout))
    if hflip:
      # tf.cond, not tf.where: broadcasting a scalar condition over the image is ~4x slower.
      # "WCH" leads with the pixel columns: mirroring gathers whole rows, ~20 us for a 224 px
      # uint8 image, where tf.reverse along that axis goes byte by byte (~120 us).
      if image_layout == "WCH":
        mirror = lambda: tf.gather(image, tf.range(image_size - 1, -1, -1))   # noqa: E731
      else:
        mirror = lambda: tf.reverse(image, axis=[1])                          # noqa: E731
      image = tf.cond(flip, mirror, lambda: image)
    if options.rand_augment_layers or options.color_jitter or options.random_erase_prob:
      key = _seed_pair(seed, position)
      ra_seed, jitter_seed, erase_seed = tf.unstack(tf.random.experimental.stateless_split(
          tf.random.experimental.stateless_fold_in(key, 1), 3))
      if options.rand_augment_layers > 0:
        image = randaugment.rand_augment(
            image, ra_seed, num_layers=options.rand_augment_layers,
            magnitude=options.rand_augment_magnitude,
            magnitude_std=options.rand_augment_magnitude_std)
      elif options.color_jitter > 0:
        image = augment.color_jitter(image, jitter_seed, options.color_jitter)
      if options.random_erase_prob > 0:
        image = augment.random_erase(image, erase_seed, options.random_erase_prob, mean, std)
    return {"image": image, "label": label, "position": position}

  def finish(batch):
    # Mixing before normalisation (in the train step) is the same as after: the per-channel
    # affine map commutes with convex combinations.
    image, label = batch["image"], batch["label"]
    if options.mixes:
      step = batch["position"][0] // global_batch   # the same draw for every shard of a step
      image, label = augment.mix_batch(
          image, label, tf.random.experimental.stateless_fold_in(_seed_pair(seed, step), 2),
          source.num_classes, options)
    if layout != image_layout:
      image = tf.transpose(image, [0] + [1 + "HWC".index(a) for a in layout])
    return {"image": image, "label": label}

  ds = schedule.unbatch()
  if stream:
    # Two chunks in flight keep the decoders fed; more would only hold more encoded bytes.
    ds = ds.batch(_CHUNK).map(fetch, num_parallel_calls=2, deterministic=True)
    ds = ds.unbatch().map(lambda encoded, label, position, window, flip: example(
        decoding.decode_and_crop(encoded, window), label, position, flip),
                num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  else:
    ds = ds.map(lambda index, position, window, flip: example(
        read_crop(index, window), labels[index], position, flip),
                num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  ds = ds.batch(batch_size, drop_remainder=True)
  ds = ds.map(finish, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  ds = ds.prefetch(tf.data.AUTOTUNE)
  return _with_options(ds).as_numpy_iterator()


def eval_batches(source: Source, split: str, *, batch_size: int, image_size: int,
                 crop_ratio: float = 0.875, num_shards: int = 1, shard_index: int = 0,
                 layout: str = "HWC") -> Iterator[Batch]:
  """One pass over `split` in its fixed order, as this shard's padded batches.

  Images: bicubic resize of the shorter side to int(image_size / crop_ratio), central
  image_size crop; uint8 pixels (`mae_jax.pixels.normalize` makes them the model's input),
  their axes ordered as `layout` says (see train_batches).
  Global batch i holds examples [i*G, (i+1)*G) (G = batch_size * num_shards) and shard k its
  part [k*batch_size, (k+1)*batch_size); every shard yields ceil(n / G) batches. Padding
  slots have zero image and label and "mask" 0 (real ones: 1), so summing over mask counts
  each example exactly once across all shards.
  """
  _check_sharding(batch_size, num_shards, shard_index)
  if not 0 < crop_ratio <= 1:
    raise ValueError(f"crop_ratio must be in (0, 1], got {crop_ratio}")
  num_examples = source.num_examples(split)
  global_batch = batch_size * num_shards
  num_batches = -(-num_examples // global_batch)
  mine = (np.arange(num_examples) % global_batch) // batch_size == shard_index
  resize_to = int(image_size / crop_ratio)

  ds = source.load(split).apply(tf.data.experimental.assert_cardinality(num_examples))
  ds = ds.enumerate()
  if num_shards > 1:
    ds = ds.filter(lambda pos, ex: (pos % global_batch) // batch_size == shard_index)
  ds = ds.map(
      lambda pos, ex: {
          "image": _center_crop(ex["image"], resize_to, image_size, layout),
          "label": ex["label"],
          "mask": tf.constant(1.0, tf.float32)},
      num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  padding = {"image": tf.zeros(pixels.image_shape(image_size, layout), tf.uint8),
             "label": tf.constant(0, tf.int32), "mask": tf.constant(0.0, tf.float32)}
  ds = ds.concatenate(tf.data.Dataset.from_tensors(padding).repeat(
      num_batches * batch_size - int(mine.sum())))
  ds = ds.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
  return _with_options(ds).as_numpy_iterator()


def crop_and_flip_draws(seed: int, positions: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
  """The crop and flip draws of the examples at stream `positions` (n,): stateless, per example.

  Returns float64 (n, 4, 10) uniforms for `random_resized_crop_windows` and float32 (n,)
  uniforms for the flip (flipped where < 0.5). Example p draws from the seed pair
  (seed, p) alone, so shards, resumed runs and a run from step 0 agree.
  """

  def one(position):
    key = _seed_pair(seed, position)
    crop_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(key, 2))
    return (tf.random.stateless_uniform([4, _CROP_ATTEMPTS], crop_seed, dtype=tf.float64),
            tf.random.stateless_uniform([], flip_seed))

  return tf.map_fn(one, tf.convert_to_tensor(positions, tf.int64),
                   fn_output_signature=(tf.float64, tf.float32))


def random_resized_crop_windows(sizes: np.ndarray, uniforms: np.ndarray, *,
                                scale: tuple[float, float], ratio: tuple[float, float],
                                ) -> np.ndarray:
  """torchvision's RandomResizedCrop.get_params for n images: int32 (n, 4) (top, left, h, w).

  sizes: (n, 2) image (height, width). uniforms: (n, 4, attempts) in [0, 1): per attempt the
  area fraction ~U(scale), the aspect ratio ~logU(ratio), the top and the left offset. As
  torchvision: the first attempt that fits, else the largest central window with aspect ratio
  clipped to `ratio`.
  """
  sizes = np.asarray(sizes, np.int64)
  height, width = sizes[:, 0:1], sizes[:, 1:2]                       # (n, 1)
  u = np.asarray(uniforms, np.float64)
  area = height * width * (scale[0] + (scale[1] - scale[0]) * u[:, 0])
  log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
  aspect = np.exp(log_lo + (log_hi - log_lo) * u[:, 1])
  # np.round, like Python's round(), rounds halves to even.
  crop_w = np.round(np.sqrt(area * aspect)).astype(np.int64)
  crop_h = np.round(np.sqrt(area / aspect)).astype(np.int64)
  fits = (crop_w > 0) & (crop_w <= width) & (crop_h > 0) & (crop_h <= height)
  # randint(0, height - crop_h); the minimum only guards float rounding as u -> 1.
  top = np.minimum(np.floor(u[:, 2] * (height - crop_h + 1)), height - crop_h)
  left = np.minimum(np.floor(u[:, 3] * (width - crop_w + 1)), width - crop_w)
  first = np.argmax(fits, axis=1)[:, None]                            # first fitting attempt
  pick = lambda x: np.take_along_axis(x, first, axis=1)[:, 0]         # noqa: E731
  attempt = np.stack([pick(top), pick(left), pick(crop_h), pick(crop_w)], axis=1)

  height, width = height[:, 0], width[:, 0]
  in_ratio = width / height
  fb_w = np.where(in_ratio > ratio[1], np.round(height * ratio[1]), width)
  fb_h = np.where(in_ratio < ratio[0], np.round(width / ratio[0]), height)
  fallback = np.stack([(height - fb_h) // 2, (width - fb_w) // 2, fb_h, fb_w], axis=1)
  return np.where(fits.any(axis=1)[:, None], attempt, fallback).astype(np.int32)


def _center_crop(image: tf.Tensor, resize_to: int, crop: int, layout: str) -> tf.Tensor:
  """Shorter side -> resize_to (bicubic), central crop x crop, as torchvision does; uint8
  with the axes in `layout` order."""
  shape = tf.cast(tf.shape(image), tf.float64)
  h, w = shape[0], shape[1]
  short = tf.constant(resize_to, tf.float64)
  new_h = tf.where(w <= h, tf.floor(short * h / w), short)
  new_w = tf.where(w <= h, short, tf.floor(short * w / h))
  image = resize.bicubic(image, tf.cast(new_h, tf.int32), tf.cast(new_w, tf.int32), tf.uint8,
                         layout)
  top = tf.cast(tf.round((new_h - crop) / 2), tf.int32)
  left = tf.cast(tf.round((new_w - crop) / 2), tf.int32)
  window = {"H": slice(top, top + crop), "W": slice(left, left + crop), "C": slice(None)}
  return tf.ensure_shape(image[tuple(window[a] for a in layout)], pixels.image_shape(crop, layout))


def _resize(image: tf.Tensor, height, width) -> tf.Tensor:
  """Bicubic resize to float32 in [0, 255], low-pass filtered when shrinking like PIL's."""
  # Bicubic overshoots at sharp edges, hence the clip to the pixel range.
  return tf.clip_by_value(resize.bicubic(image, height, width), 0.0, 255.0)


def _stream_split(source: Source, split: str):
  """read(indices (k,)) -> (encoded bytes (k,), int32 labels (k,), int32 sizes (k, 2)), from
  `source`'s random-access store; sizes from the JPEG headers (other formats: from decoding).

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


def _cache_split(source: Source, split: str):
  """Reads `split` into memory: (read_crop, int32 labels (N,), int64 image sizes (N, 2)).

  `read_crop(index, window)` gives the uint8 crop `window` = (top, left, height, width) of
  example `index`: decoded from the cached encoded bytes when the source serves them (crop fused
  into JPEG decoding), else sliced from the cached pixels. Sizes are (height, width), read from
  JPEG headers without decoding. Peak host memory is about twice the cache.
  """
  encoded = source.load_encoded(split)
  if encoded is not None:
    ds = encoded.map(lambda ex: {**ex, **decoding.header(ex["image"])},
                     num_parallel_calls=tf.data.AUTOTUNE)
  else:
    ds = source.load(split)
    if ds.element_spec["image"].shape.is_fully_defined():
      ds = ds.batch(_STATIC_BATCH)  # same-shape images: read many at a time, much faster
  chunks, shapes, labels, jpeg = [], [], [], []
  for ex in ds.prefetch(tf.data.AUTOTUNE).as_numpy_iterator():
    if encoded is not None:
      chunks.append(ex["image"])
      shapes.append(ex["size"])
      jpeg.append(ex["is_jpeg"])
    else:
      images = ex["image"] if ex["image"].ndim == 4 else ex["image"][None]
      chunks.extend(image.reshape(-1) for image in images)
      shapes.extend(image.shape for image in images)
    labels.append(np.reshape(ex["label"], -1))
  labels = np.concatenate(labels).astype(np.int32)
  expected = source.num_examples(split)
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


def _seed_pair(seed: int, counter: tf.Tensor) -> tf.Tensor:
  """The int64 (seed, counter) key of stateless TF random ops: counter = position or step."""
  return tf.stack([tf.constant(seed, tf.int64), counter])


def _check_sharding(batch_size: int, num_shards: int, shard_index: int) -> None:
  if batch_size < 1:
    raise ValueError(f"batch_size must be positive, got {batch_size}")
  if not 0 <= shard_index < num_shards:
    raise ValueError(f"need 0 <= shard_index < num_shards, got {shard_index} and {num_shards}")


def _with_options(ds: tf.data.Dataset) -> tf.data.Dataset:
  """Deterministic order, and threading tuned for CPU-bound per-image work."""
  options = tf.data.Options()
  options.deterministic = True
  # Parallelism comes from mapping many examples at once; letting each op (a resize, a
  # decode) also split itself over the same few cores only adds scheduling overhead.
  options.threading.max_intra_op_parallelism = 1
  # The pool also runs batching and prefetching, whose threads wait on the map; with one
  # thread per core a waiting thread idles its core. Two spare threads keep every core busy:
  # on 2 cores, 1.93 instead of 1.74 cores busy and ~10% more images/s (input bench).
  options.threading.private_threadpool_size = _num_cpus() + 2
  return ds.with_options(options)


def _num_cpus() -> int:
  """CPUs this process may run on (a container's share, not the host's count)."""
  try:
    return len(os.sched_getaffinity(0))
  except AttributeError:   # not on Linux
    return os.cpu_count() or 1
