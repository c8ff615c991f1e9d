"""Antialiased bicubic resize (PIL's BICUBIC, as torchvision uses), as two fast row passes.

The result is `tf.image.resize(image, size, "bicubic", antialias=True)`: TF's
ScaleAndTranslate with the Keys cubic kernel (a = -0.5, stretched by the shrink factor when
shrinking), the same passes in the same order, so the same numbers (bit for bit here).

Why not call tf.image.resize: ScaleAndTranslate resizes rows as whole-row multiply-adds, which
vectorise, but columns one output pixel at a time over 3 channels, which does not; on a
~335 px crop to 224 px that column pass is most of its ~1.4-2.3 ms (2-core x86 VM, one thread).
Here the columns are resized as rows too: 2-D transposes (cheap, unlike TF's HWC transpose
of 3-byte pixels) turn the image so that its columns lead, and back. ~0.65-1.2 ms in all.
The way back can be left to the accelerator: layout "WCH" returns the image as the second
pass leaves it, (width, C, height), and `mae_jax.pixels` transposes it inside the train step.
"""

from mae_jax.data.tfsetup import tf

# How an image's axes are ordered in memory: "HWC" rows of interleaved pixels; "WCH" one
# plane per pixel column, each holding the C channels' columns of H values.
LAYOUTS = ("HWC", "WCH")


def _resize_rows(x: tf.Tensor, n: tf.Tensor) -> tf.Tensor:
  """(L, M) -> float32 (n, M): every column resized from L to n samples."""
  length, size = tf.shape(x)[0], tf.shape(x)[1]
  # A 1-pixel-wide image with M channels: ScaleAndTranslate's row pass over M-long rows does
  # the work; its column pass (width 1 -> 1, one tap of weight 1) is a copy.
  out = tf.raw_ops.ScaleAndTranslate(
      images=tf.reshape(x, tf.stack([1, length, 1, size])), size=tf.stack([n, 1]),
      scale=tf.stack([tf.cast(n, tf.float32) / tf.cast(length, tf.float32), 1.0]),
      translation=tf.zeros([2]), kernel_type="keyscubic", antialias=True)
  return tf.reshape(out, tf.stack([n, size]))


def bicubic(image: tf.Tensor, height, width, dtype: tf.DType = tf.float32,
            layout: str = "HWC") -> tf.Tensor:
  """(H, W, C) image of any real dtype -> (height, width, C) `dtype`, antialiased bicubic.

  float32: not clipped (bicubic overshoots slightly at sharp edges). uint8: clipped to
  [0, 255] and rounded half up, as PIL stores a resized 8-bit image. layout "WCH": the same
  pixels as (width, C, height), without the last transpose.
  """
  check_layout(layout)
  shape = tf.shape(image)
  h, w, c = shape[0], shape[1], shape[2]
  height = tf.convert_to_tensor(height, tf.int32)
  width = tf.convert_to_tensor(width, tf.int32)
  # Height first, as TF does: rows of (H, W*C) are image rows.
  out = _resize_rows(tf.reshape(image, tf.stack([h, w * c])), height)   # (height, W*C)
  # (height, W*C) -> (W*C, height), read as (W, C*height): one row per image column. Shrinking
  # the height first means fewer elements to transpose, the costlier step.
  out = tf.reshape(tf.transpose(out), tf.stack([w, c * height]))
  out = _resize_rows(out, width)                                         # (width, C*height)
  out = tf.reshape(out, tf.stack([width * c, height]))
  if dtype == tf.uint8:
    out = _round_to_uint8(out)   # before the transpose, which then moves a quarter of the bytes
  elif dtype != tf.float32:
    raise ValueError(f"dtype must be float32 or uint8, got {dtype}")
  if layout == "WCH":
    return tf.reshape(out, tf.stack([width, c, height]))
  # (width*C, height) -> (height, width*C): back to rows of interleaved pixels.
  out = tf.transpose(out)
  return tf.reshape(out, tf.stack([height, width, c]))


def check_layout(layout: str) -> None:
  if layout not in LAYOUTS:
    raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")


def _round_to_uint8(x: tf.Tensor) -> tf.Tensor:
  """float32 -> uint8: clip to [0, 255], round half up; one pass (clip, add, cast: three)."""
  # QuantizeV2 MIN_COMBINED over [0, 255] to 256 levels: min(max(x, 0), 255) + 0.5, truncated.
  out = tf.raw_ops.QuantizeV2(input=x, min_range=0.0, max_range=255.0, T=tf.quint8,
                              mode="MIN_COMBINED", ensure_minimum_range=0.0).output
  return tf.bitcast(out, tf.uint8)
