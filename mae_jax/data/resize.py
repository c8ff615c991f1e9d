"""Bicubic resizing as PIL does it, as two banded matrix products per image.

torchvision's RandomResizedCrop resizes PIL images with PIL's bicubic filter (a = -0.5), which
low-pass filters when shrinking: the kernel is stretched by the scale factor, so every output
pixel averages all the input pixels it covers. `tf.image.resize(..., antialias=True)` computes
the same weights, but its kernel (ScaleAndTranslate) loops over taps one pixel at a time and
costs more per image than PIL's whole crop-and-resize. Here each pass is a batched matmul:

  * output columns are cut into blocks of `_BLOCK`; block b reads one window of L consecutive
    input columns (the union of its outputs' taps) and multiplies it by a (_BLOCK, L) weight
    matrix that is zero outside each output's taps;
  * so a pass does out * L multiply-adds per row instead of out * in for a dense matrix, and L is
    about _BLOCK * scale + the kernel's width.

The weights are PIL's (Resample.c's precompute_coeffs, reimplemented from its definition):
output x has centre (x + 0.5) * scale, taps [floor(centre - s + 0.5), floor(centre + s + 0.5))
clipped to the image, s = 2 * max(scale, 1), weights cubic((tap - centre + 0.5) / max(scale, 1))
normalised to sum 1. The result equals tf.image.resize's antialiased bicubic to float rounding;
it differs from PIL only because PIL rounds and clips to uint8 after each pass (tests bound the
difference on photos). A horizontal flip is folded into the weights at no cost: flipping
the output is reading output columns in reverse order.
"""

import tensorflow as tf

# Output pixels per block. Smaller blocks waste fewer zero weights, larger ones make bigger,
# more efficient matmuls; 32 was fastest for 224 px crops of ~500x375 photos on 2 CPU cores.
_BLOCK = 32
_A = -0.5  # PIL's bicubic parameter (torchvision's default through PIL)


def bicubic(image: tf.Tensor, height: int, width: int, flip: tf.Tensor | bool = False,
            ) -> tf.Tensor:
  """(h, w, 3) pixels -> float32 (height, width, 3), PIL bicubic; mirrored left-right if `flip`.

  Not clipped: like any bicubic filter it overshoots near edges by a few levels.
  """
  h, w = tf.shape(image)[0], tf.shape(image)[1]
  # Horizontal pass on the image laid out as (w, 3 * h): the taps of a window are rows, so the
  # window is a contiguous gather and the pass one batched matmul.
  rows = tf.reshape(tf.cast(tf.transpose(image, [1, 2, 0]), tf.float32), [w, 3 * h])
  taps, weights = _block_weights(w, width, flip)
  out = tf.matmul(weights, tf.gather(rows, taps))                 # (blocks, block, 3 * h)
  out = tf.reshape(out, [-1, 3, h])[:width]                       # (width, 3, h)
  # Vertical pass on (h, width * 3): its product is already the (height, width, 3) image.
  rows = tf.reshape(tf.transpose(out, [2, 0, 1]), [h, width * 3])
  taps, weights = _block_weights(h, height, False)
  out = tf.matmul(weights, tf.gather(rows, taps))                 # (blocks, block, width * 3)
  return tf.reshape(out, [-1, width, 3])[:height]


def _block_weights(in_size: tf.Tensor, out_size: int, flip: tf.Tensor | bool,
                   ) -> tuple[tf.Tensor, tf.Tensor]:
  """Windows and weights of a pass: int32 (blocks, L) input indices, float32 (blocks, block, L).

  Output o of block b is sum_l weights[b, o, l] * input[taps[b, l]]; the last block is padded
  with copies of the last output, which the caller slices off.
  """
  block = min(_BLOCK, out_size)
  num_blocks = -(-out_size // block)
  n = tf.cast(in_size, tf.float32)
  scale = n / out_size
  stretch = tf.maximum(scale, 1.0)   # > 1 when shrinking: the antialiasing low-pass
  support = 2.0 * stretch
  o = tf.minimum(tf.range(num_blocks * block), out_size - 1)
  o = tf.where(flip, out_size - 1 - o, o)
  centre = tf.reshape((tf.cast(o, tf.float32) + 0.5) * scale, [num_blocks, block, 1])
  first = tf.maximum(tf.floor(centre - support + 0.5), 0.0)    # (blocks, block, 1)
  end = tf.minimum(tf.floor(centre + support + 0.5), n)
  lo = tf.reduce_min(first, axis=[1, 2])
  length = tf.reduce_max(tf.reduce_max(end, axis=[1, 2]) - lo)
  start = tf.minimum(lo, n - length)                            # every window lies inside
  taps = start[:, None] + tf.range(length)[None, :]              # (blocks, L)
  x = taps[:, None, :]
  t = tf.abs((x - centre + 0.5) / stretch)
  cubic = tf.where(t < 1.0, ((_A + 2.0) * t - (_A + 3.0)) * t * t + 1.0,
                   (((t - 5.0) * t + 8.0) * t - 4.0) * _A)
  cubic = tf.where((x >= first) & (x < end) & (t < 2.0), cubic, 0.0)
  weights = cubic / tf.reduce_sum(cubic, axis=2, keepdims=True)
  return tf.cast(taps, tf.int32), weights
