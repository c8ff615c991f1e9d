"""RandAugment as the MAE fine-tune recipe runs it: timm's "rand-m9-mstd0.5-inc1", statelessly.

Each of `num_layers` rounds picks one of the 15 ops in `OPS` uniformly (with replacement) and
applies it with probability 0.5 at a level drawn from N(magnitude, magnitude_std) clipped to
[0, 10]; ops with a direction (rotate, shear, translate, enhance) take either sign with equal
odds. "inc1" is timm's "increasing" op set: a larger level always means a stronger change
(posterize keeps fewer bits, solarize a lower threshold, enhance factors move away from 1).

Ops follow PIL's definitions (ImageOps / ImageEnhance / Image.transform), on uint8 pixels as
PIL does. Geometric ops fill uncovered pixels with timm's fill colour (the ImageNet mean) and
interpolate bilinearly (timm draws bilinear or bicubic at random; the difference is invisible
at these small displacements). All randomness comes from the `seed` argument.
"""

import math

from mae_jax.data.tfsetup import tf

MAX_LEVEL = 10.0
_FILL = (124.0, 116.0, 104.0)   # timm's fill colour: round(255 * IMAGENET_DEFAULT_MEAN)
_ROTATE_DEG = 30.0              # level 10 rotates by +-30 degrees
_SHEAR = 0.3                    # level 10 shears by +-0.3
_TRANSLATE = 0.45               # level 10 shifts by +-45% of the side
_ENHANCE = 0.9                  # level 10 enhance factors: 1 +- 0.9
_SOLARIZE_ADD = 110             # level 10 adds 110 to pixels below 128
_APPLY_PROB = 0.5               # timm's RandAugment applies each drawn op with this probability


def _gray(image: tf.Tensor) -> tf.Tensor:
  """uint8 (H, W, 3) -> float32 (H, W, 1): PIL's convert("L") (ITU-R 601-2 luma, rounded)."""
  x = tf.cast(image, tf.float32)
  return tf.round(x[..., :1] * 0.299 + x[..., 1:2] * 0.587 + x[..., 2:] * 0.114)


def blend(degenerate: tf.Tensor, image: tf.Tensor, factor: tf.Tensor) -> tf.Tensor:
  """PIL ImageEnhance: degenerate + factor * (image - degenerate), as uint8 (factor 1: image)."""
  d = tf.cast(degenerate, tf.float32)
  out = d + tf.cast(factor, tf.float32) * (tf.cast(image, tf.float32) - d)
  return tf.cast(tf.clip_by_value(tf.round(out), 0.0, 255.0), tf.uint8)


def brightness(image: tf.Tensor, factor: tf.Tensor) -> tf.Tensor:
  """Blend with black."""
  return blend(tf.zeros_like(image), image, factor)


def contrast(image: tf.Tensor, factor: tf.Tensor) -> tf.Tensor:
  """Blend with the mean gray level (PIL rounds it to an integer)."""
  mean = tf.floor(tf.reduce_mean(_gray(image)) + 0.5)
  return blend(tf.fill(tf.shape(image), mean), image, factor)


def saturation(image: tf.Tensor, factor: tf.Tensor) -> tf.Tensor:
  """Blend with the grayscale image (PIL's ImageEnhance.Color)."""
  return blend(tf.broadcast_to(_gray(image), tf.shape(image)), image, factor)


def sharpness(image: tf.Tensor, factor: tf.Tensor) -> tf.Tensor:
  """Blend with PIL's SMOOTH filter (3x3, centre weight 5, total 13); border pixels unfiltered."""
  x = tf.cast(image, tf.float32)[None]
  kernel = tf.constant([[1, 1, 1], [1, 5, 1], [1, 1, 1]], tf.float32) / 13.0
  kernel = tf.tile(kernel[:, :, None, None], [1, 1, 3, 1])
  smooth = tf.round(tf.nn.depthwise_conv2d(x, kernel, [1, 1, 1, 1], "VALID"))[0]
  degenerate = tf.pad(smooth, [[1, 1], [1, 1], [0, 0]])
  border = tf.pad(tf.zeros_like(smooth[..., :1]), [[1, 1], [1, 1], [0, 0]], constant_values=1.0)
  degenerate = border * tf.cast(image, tf.float32) + (1.0 - border) * degenerate
  return blend(degenerate, image, factor)


def _auto_contrast(image: tf.Tensor) -> tf.Tensor:
  """Each channel stretched linearly to 0..255 (PIL's autocontrast, cutoff 0)."""
  x = tf.cast(image, tf.float32)
  lo = tf.reduce_min(x, axis=[0, 1])
  hi = tf.reduce_max(x, axis=[0, 1])
  scale = 255.0 / tf.maximum(hi - lo, 1.0)
  out = tf.clip_by_value(tf.floor((x - lo) * scale), 0.0, 255.0)
  return tf.cast(tf.where(hi > lo, out, x), tf.uint8)


def _equalize_channel(channel: tf.Tensor) -> tf.Tensor:
  """PIL's equalize of one uint8 (H, W) channel: a lookup table from its cumulative histogram."""
  values = tf.cast(channel, tf.int32)
  hist = tf.math.bincount(values, minlength=256, maxlength=256)
  last = tf.gather(hist, tf.reduce_max(tf.where(hist > 0)))   # count of the top gray level
  step = (tf.reduce_sum(hist) - last) // 255
  lut = (tf.cumsum(hist, exclusive=True) + step // 2) // tf.maximum(step, 1)
  lut = tf.clip_by_value(lut, 0, 255)
  return tf.cast(tf.where(step > 0, tf.gather(lut, values), values), tf.uint8)


def _equalize(image: tf.Tensor) -> tf.Tensor:
  return tf.stack([_equalize_channel(image[..., c]) for c in range(3)], axis=-1)


def _posterize(image: tf.Tensor, bits: tf.Tensor) -> tf.Tensor:
  """Keeps the top `bits` bits of every pixel (0 bits: black)."""
  quantum = tf.bitwise.left_shift(1, 8 - bits)
  return tf.cast(tf.cast(image, tf.int32) // quantum * quantum, tf.uint8)


def _solarize(image: tf.Tensor, threshold: tf.Tensor) -> tf.Tensor:
  """Inverts the pixels at or above `threshold`."""
  x = tf.cast(image, tf.int32)
  return tf.cast(tf.where(x < threshold, x, 255 - x), tf.uint8)


def _solarize_add(image: tf.Tensor, addition: tf.Tensor) -> tf.Tensor:
  """Adds `addition` to the pixels below 128, saturating at 255."""
  x = tf.cast(image, tf.int32)
  return tf.cast(tf.where(x < 128, tf.minimum(x + addition, 255), x), tf.uint8)


def affine(image: tf.Tensor, matrix: tf.Tensor) -> tf.Tensor:
  """PIL's Image.transform(AFFINE, matrix): output pixel (x, y) samples the input at
  (a x + b y + c, d x + e y + f) for matrix (a, b, c, d, e, f), bilinearly; outside: _FILL."""
  x = tf.cast(image, tf.float32)
  # One extra all-ones channel, transformed with fill 0, tells how much of each output pixel
  # came from inside the image: the rest is the (per-channel) fill colour.
  x = tf.concat([x, tf.ones_like(x[..., :1])], axis=-1)[None]
  transform = tf.concat([tf.cast(matrix, tf.float32), tf.zeros([2])], axis=0)[None]
  out = tf.raw_ops.ImageProjectiveTransformV3(
      images=x, transforms=transform, output_shape=tf.shape(image)[:2],
      fill_value=0.0, interpolation="BILINEAR", fill_mode="CONSTANT")[0]
  rgb = out[..., :3] + (1.0 - out[..., 3:]) * tf.constant(_FILL)
  return tf.cast(tf.clip_by_value(tf.round(rgb), 0.0, 255.0), tf.uint8)


def _rotate(image: tf.Tensor, degrees: tf.Tensor) -> tf.Tensor:
  """Counter-clockwise rotation about the centre (PIL's Image.rotate)."""
  theta = degrees * (math.pi / 180.0)
  cos, sin = tf.cos(theta), tf.sin(theta)
  shape = tf.cast(tf.shape(image), tf.float32)
  cx, cy = (shape[1] - 1.0) / 2.0, (shape[0] - 1.0) / 2.0
  return affine(image, tf.stack([cos, -sin, cx - cos * cx + sin * cy,
                                 sin, cos, cy - sin * cx - cos * cy]))


def _op_table() -> list:
  """(name, fn(uint8 image, level in [0, 10], sign +-1) -> uint8 image), timm's inc1 order."""

  def frac(level):
    return level / MAX_LEVEL

  def size(image, axis):
    return tf.cast(tf.shape(image)[axis], tf.float32)

  return [
      ("AutoContrast", lambda im, lv, s: _auto_contrast(im)),
      ("Equalize", lambda im, lv, s: _equalize(im)),
      ("Invert", lambda im, lv, s: 255 - im),
      ("Rotate", lambda im, lv, s: _rotate(im, s * frac(lv) * _ROTATE_DEG)),
      ("PosterizeIncreasing",
       lambda im, lv, s: _posterize(im, 4 - tf.cast(frac(lv) * 4, tf.int32))),
      ("SolarizeIncreasing",
       lambda im, lv, s: _solarize(im, 256 - tf.cast(frac(lv) * 256, tf.int32))),
      ("SolarizeAdd",
       lambda im, lv, s: _solarize_add(im, tf.cast(frac(lv) * _SOLARIZE_ADD, tf.int32))),
      ("ColorIncreasing", lambda im, lv, s: saturation(im, 1 + s * frac(lv) * _ENHANCE)),
      ("ContrastIncreasing", lambda im, lv, s: contrast(im, 1 + s * frac(lv) * _ENHANCE)),
      ("BrightnessIncreasing", lambda im, lv, s: brightness(im, 1 + s * frac(lv) * _ENHANCE)),
      ("SharpnessIncreasing", lambda im, lv, s: sharpness(im, 1 + s * frac(lv) * _ENHANCE)),
      ("ShearX", lambda im, lv, s: affine(im, tf.stack([1.0, s * frac(lv) * _SHEAR, 0.0,
                                                        0.0, 1.0, 0.0]))),
      ("ShearY", lambda im, lv, s: affine(im, tf.stack([1.0, 0.0, 0.0,
                                                        s * frac(lv) * _SHEAR, 1.0, 0.0]))),
      ("TranslateXRel", lambda im, lv, s: affine(im, tf.stack(
          [1.0, 0.0, s * frac(lv) * _TRANSLATE * size(im, 1), 0.0, 1.0, 0.0]))),
      ("TranslateYRel", lambda im, lv, s: affine(im, tf.stack(
          [1.0, 0.0, 0.0, 0.0, 1.0, s * frac(lv) * _TRANSLATE * size(im, 0)]))),
  ]


OPS = tuple(name for name, _ in _op_table())


@tf.function(input_signature=[tf.TensorSpec([None, None, 3], tf.uint8),
                              tf.TensorSpec([], tf.int32), tf.TensorSpec([], tf.float32),
                              tf.TensorSpec([], tf.float32)], autograph=False)
def _apply_op(image, index, level, sign):
  # One traced function for every call: tracing the 15 branches anew in each layer of each
  # pipeline would take tens of seconds.
  branches = [lambda fn=fn: tf.ensure_shape(fn(image, level, sign), [None, None, 3])
              for _, fn in _op_table()]
  return tf.switch_case(index, branches)


def apply_op(image: tf.Tensor, index, level, sign=1.0) -> tf.Tensor:
  """Op number `index` of OPS on uint8 (H, W, 3) at `level` in [0, 10] with direction `sign`."""
  out = _apply_op(image, tf.cast(index, tf.int32), tf.cast(level, tf.float32),
                  tf.cast(sign, tf.float32))
  return tf.ensure_shape(out, image.shape)


def rand_augment(image: tf.Tensor, seed: tf.Tensor, *, num_layers: int, magnitude: float,
                 magnitude_std: float) -> tf.Tensor:
  """float32 (H, W, 3) in [0, 255] -> RandAugment'ed float32 (H, W, 3) with integer values.

  `seed`: int64 (2,) stateless seed; the same seed gives the same ops, levels and result.
  """
  out = tf.cast(tf.clip_by_value(tf.round(image), 0.0, 255.0), tf.uint8)  # PIL works in uint8
  for layer_seed in tf.unstack(tf.random.experimental.stateless_split(seed, num_layers)):
    u = tf.random.stateless_uniform([3], layer_seed)
    normal = tf.random.stateless_normal([], tf.random.experimental.stateless_fold_in(
        layer_seed, 1))
    index = tf.minimum(tf.cast(u[0] * len(OPS), tf.int32), len(OPS) - 1)
    level = tf.clip_by_value(magnitude + magnitude_std * normal, 0.0, MAX_LEVEL)
    sign = tf.where(u[2] < 0.5, -1.0, 1.0)
    current = out
    out = tf.cond(u[1] < _APPLY_PROB, lambda: apply_op(current, index, level, sign),
                  lambda: current)
  return tf.cast(out, tf.float32)
