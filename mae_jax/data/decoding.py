"""Encoded images -> pixels, with the crop fused into JPEG decoding.

A training crop often covers a fraction of the photo: `tf.io.decode_and_crop_jpeg` runs the
inverse DCT and colour conversion only for the blocks of the crop window, where decoding the
whole image and slicing would do them all. Other formats are decoded whole, then cropped.
Crop windows are drawn beforehand from each image's size (`header`, read once per image when a
split is cached: the file's first bytes give it without decoding).

A file that does not decode (truncated, corrupt, not an image) fails in `decode` and
`decode_and_crop`, where the pipeline skips it (pipeline.py); `header` itself never fails on one
(unless it starts like a JPEG whose header is cut: the `images:` scan leaves those out), so that
it cannot take the files read with it down too.

JPEGs use libjpeg's accurate integer IDCT, as PIL (and so the official loader) does; TF's
default fast IDCT differs from PIL by ~0.7 grey levels on average, up to ~9, and measured no
faster here.
"""

from mae_jax.data.tfsetup import tf

_DCT_METHOD = "INTEGER_ACCURATE"
_SNIFF = 26   # first bytes of a file that hold its PNG, GIF or BMP size


def decode(encoded: tf.Tensor) -> tf.Tensor:
  """Encoded JPEG/PNG/GIF/BMP bytes -> uint8 (H, W, 3); gray and alpha images become RGB."""
  image = tf.cond(tf.io.is_jpeg(encoded),
                  lambda: tf.io.decode_jpeg(encoded, channels=3, dct_method=_DCT_METHOD),
                  lambda: _decode_not_jpeg(encoded))
  return tf.ensure_shape(image, [None, None, 3])


def _decode_not_jpeg(encoded: tf.Tensor) -> tf.Tensor:
  # decode_image takes no IDCT option, hence JPEGs go through decode_jpeg instead.
  return tf.io.decode_image(encoded, channels=3, expand_animations=False)


def header(encoded: tf.Tensor) -> dict[str, tf.Tensor]:
  """{"size": int32 (2,) (height, width), "is_jpeg": bool ()}, the size the decoders give.

  JPEG: from its header; PNG, GIF, BMP: from their first bytes (decoding every PNG of a split
  just for its size cost as much as training on it once); WebP and JPEG XL: decoded. Anything
  else decodes to nothing and gets (1, 1), a window that is never used.
  """
  is_jpeg = tf.io.is_jpeg(encoded)
  # Exactly _SNIFF bytes (zeros past the end), so that a short file parses as no format.
  head = tf.strings.join([tf.strings.substr(encoded, 0, _SNIFF), "\0" * _SNIFF])
  first = tf.cast(tf.io.decode_raw(tf.strings.substr(head, 0, _SNIFF), tf.uint8), tf.int64)

  def starts(signature: bytes, at: int = 0) -> tf.Tensor:
    return tf.reduce_all(tf.equal(first[at:at + len(signature)], list(signature)))

  def big_endian(at: int) -> tf.Tensor:
    return first[at] * 2**24 + first[at + 1] * 2**16 + first[at + 2] * 2**8 + first[at + 3]

  def little_endian(at: int, length: int) -> tf.Tensor:
    value = sum(first[at + i] * 2**(8 * i) for i in range(length))
    # BMP stores a signed height (negative: rows top-down), which the decoder takes the size of.
    return tf.abs(tf.where(value >= 2**31, value - 2**32, value)) if length == 4 else value

  def parsed() -> tf.Tensor:
    size = tf.where(starts(b"\x89PNG\r\n\x1a\n"), tf.stack([big_endian(20), big_endian(16)]),
                    tf.where(starts(b"GIF8"), tf.stack([little_endian(8, 2), little_endian(6, 2)]),
                             tf.where(starts(b"BM"),
                                      tf.stack([little_endian(22, 4), little_endian(18, 4)]),
                                      tf.constant([1, 1], tf.int64))))
    return tf.cast(tf.clip_by_value(size, 1, 2**31 - 1), tf.int32)

  decoded = tf.logical_or(tf.logical_and(starts(b"RIFF"), starts(b"WEBP", 8)),
                          tf.logical_or(starts(b"\xff\x0a"), starts(b"\0\0\0\x0cJXL ")))
  size = tf.cond(is_jpeg, lambda: tf.io.extract_jpeg_shape(encoded)[:2],
                 lambda: tf.cond(decoded, lambda: tf.shape(_decode_not_jpeg(encoded))[:2],
                                 parsed))
  return {"size": size, "is_jpeg": is_jpeg}


def crop(image: tf.Tensor, window: tf.Tensor) -> tf.Tensor:
  """(H, W, C) image -> its crop `window` = int32 (top, left, height, width), (h, w, C)."""
  return tf.slice(image, tf.concat([window[:2], [0]], 0), tf.concat([window[2:], [-1]], 0))


def decode_and_crop(encoded: tf.Tensor, window: tf.Tensor, *, all_jpeg: bool = False,
                    ) -> tf.Tensor:
  """The crop `window` = int32 (top, left, height, width) of an encoded image, uint8 (h, w, 3).

  all_jpeg: the caller knows the image is a JPEG, so the format is not tested (one op and a
  tf.cond less per image).
  """
  window = tf.convert_to_tensor(window, tf.int32)

  def jpeg():
    return tf.io.decode_and_crop_jpeg(encoded, window, channels=3, dct_method=_DCT_METHOD)

  def other():
    return crop(_decode_not_jpeg(encoded), window)

  image = jpeg() if all_jpeg else tf.cond(tf.io.is_jpeg(encoded), jpeg, other)
  return tf.ensure_shape(image, [None, None, 3])
