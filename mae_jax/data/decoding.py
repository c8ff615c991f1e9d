"""Encoded images -> pixels, with the crop fused into JPEG decoding.

A training crop often covers a fraction of the photo: `tf.io.decode_and_crop_jpeg` runs the
inverse DCT and colour conversion only for the blocks of the crop window, where decoding the
whole image and slicing would do them all. Other formats are decoded whole, then cropped.
Crop windows are drawn beforehand from each image's size (`header`, read once per image when a
split is cached: a JPEG header gives it without decoding).

JPEGs use libjpeg's accurate integer IDCT, as PIL (and so the official loader) does; TF's
default fast IDCT differs from PIL by ~0.7 grey levels on average, up to ~9, and measured no
faster here.
"""

from mae_jax.data.tfsetup import tf

_DCT_METHOD = "INTEGER_ACCURATE"


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
  """{"size": int32 (2,) (height, width), "is_jpeg": bool ()}; only non-JPEGs are decoded."""
  is_jpeg = tf.io.is_jpeg(encoded)
  size = tf.cond(is_jpeg, lambda: tf.io.extract_jpeg_shape(encoded)[:2],
                 lambda: tf.shape(_decode_not_jpeg(encoded))[:2])
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
