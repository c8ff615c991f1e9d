"""The random crop and flip of a training image: torchvision's RandomResizedCrop and
RandomHorizontalFlip, drawn statelessly per example.

Every draw for an example uses stateless TF random ops keyed on (seed, position), its position
in the global stream (schedule.py), so shards, resumed runs and a run from step 0 agree. The
draws are TF ops; the window arithmetic is numpy, vectorised over many examples at once.
"""

import dataclasses
import math

import numpy as np

from mae_jax.data.tfsetup import tf

_CROP_ATTEMPTS = 10   # torchvision's RandomResizedCrop tries 10 windows before its fallback


@dataclasses.dataclass(frozen=True)
class CropFlip:
  """The per-example geometry of a training image: RandomResizedCrop(size, scale, ratio,
  bicubic), then, with `hflip`, a horizontal flip with probability 0.5."""
  size: int                                   # output side, pixels
  scale: tuple[float, float]                  # area fraction of the crop, (min, max)
  ratio: tuple[float, float] = (3 / 4, 4 / 3)  # aspect ratio w / h of the crop, (min, max)
  hflip: bool = True

  def __post_init__(self):
    if not 0 < self.scale[0] <= self.scale[1]:
      raise ValueError(f"crop_scale must satisfy 0 < min <= max, got {self.scale}")
    if not 0 < self.ratio[0] <= self.ratio[1]:
      raise ValueError(f"crop_ratio must satisfy 0 < min <= max, got {self.ratio}")

  def windows(self, sizes: np.ndarray, uniforms: np.ndarray) -> np.ndarray:
    """sizes (n, 2), uniforms (n, 4, attempts) -> int32 (n, 4) windows (top, left, h, w)."""
    return random_resized_crop_windows(sizes, uniforms, scale=self.scale, ratio=self.ratio)


def seed_pair(seed: int, counter: tf.Tensor) -> tf.Tensor:
  """The int64 (seed, counter) key of stateless TF random ops: counter = position or step."""
  return tf.stack([tf.constant(seed, tf.int64), counter])


def crop_and_flip_draws(seed: int, positions: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
  """The crop and flip draws of the examples at stream `positions` (n,): stateless, per example.

  Returns float64 (n, 4, 10) uniforms for `random_resized_crop_windows` and float32 (n,)
  uniforms for the flip (flipped where < 0.5). Example p draws from the seed pair
  (seed, p) alone, so shards, resumed runs and a run from step 0 agree.
  """

  def one(position):
    key = seed_pair(seed, position)
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
