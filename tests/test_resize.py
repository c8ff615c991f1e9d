"""The pipeline's bicubic resize against PIL's, which torchvision's RandomResizedCrop uses."""

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from sklearn.datasets import load_sample_images

from mae_jax.data import pipeline
from mae_jax.data import resize
from tests.helpers import as_pil_stores_it

# (top, left, height, width) crops of the 427x640 sample photos, and output sizes: shrinking by
# up to 2.9x, enlarging, and mixed (one side shrinks, the other grows), as RandomResizedCrop does.
CASES = [((0, 0, 427, 640), (224, 224)), ((40, 100, 300, 250), (224, 224)),
         ((10, 20, 150, 180), (224, 224)), ((100, 50, 97, 400), (224, 224)),
         ((5, 7, 333, 333), (64, 48)), ((200, 300, 13, 9), (32, 32))]


@pytest.fixture(scope="module")
def photos():
  return load_sample_images().images


@pytest.mark.parametrize("window,size", CASES)
def test_matches_pil_bicubic_on_photo_crops(photos, window, size):
  top, left, h, w = window
  for photo in photos:
    crop = np.ascontiguousarray(photo[top:top + h, left:left + w])
    expected = np.asarray(Image.fromarray(crop).resize(size[::-1], Image.BICUBIC), np.float32)
    ours = pipeline._resize(tf.constant(crop), *size).numpy()  # pylint: disable=protected-access
    rounded = resize.bicubic(tf.constant(crop), *size, dtype=tf.uint8).numpy()
    assert ours.shape == expected.shape and rounded.dtype == np.uint8
    # PIL rounds to uint8 after each of its two passes, so up to ~1 level apart per pixel;
    # an aliasing (unfiltered) shrink or a shifted grid is several levels off on photos.
    for out in (ours, rounded.astype(np.float32)):
      diff = np.abs(out - expected)
      assert diff.mean() < 0.6, diff.mean()
      assert np.quantile(diff, 0.999) < 3.0
    # uint8: the float result clipped and rounded half up, as PIL stores its own.
    np.testing.assert_array_equal(rounded, as_pil_stores_it(ours))


def test_aliasing_resize_is_caught(photos):
  """The bound above has teeth: a non-antialiased shrink of a photo breaks it."""
  crop = photos[0]
  expected = np.asarray(Image.fromarray(crop).resize((160, 120), Image.BICUBIC), np.float32)
  aliased = np.clip(tf.image.resize(crop, [120, 160], method="bicubic").numpy(), 0, 255)
  assert np.abs(aliased - expected).mean() > 0.6


@pytest.mark.parametrize("shape,size", [((300, 280, 3), (224, 224)), ((97, 400, 3), (224, 224)),
                                        ((13, 9, 3), (32, 32)), ((50, 60, 1), (20, 90)),
                                        ((1, 5, 3), (4, 4))])
@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_row_pass_resize_equals_tf_antialiased_bicubic(shape, size, dtype):
  """resize.bicubic runs TF's ScaleAndTranslate as two row passes: the same numbers."""
  image = np.random.default_rng(0).integers(0, 256, shape).astype(dtype)
  expected = tf.image.resize(image, size, method="bicubic", antialias=True).numpy()
  ours = resize.bicubic(tf.constant(image), *size).numpy()
  assert ours.shape == expected.shape and ours.dtype == np.float32
  np.testing.assert_allclose(ours, expected, atol=1e-3)
  # layout "WCH": the same numbers without the last transpose, float and rounded.
  for out_dtype in (tf.float32, tf.uint8):
    hwc = resize.bicubic(tf.constant(image), *size, dtype=out_dtype).numpy()
    wch = resize.bicubic(tf.constant(image), *size, dtype=out_dtype, layout="WCH").numpy()
    np.testing.assert_array_equal(wch, hwc.transpose(1, 2, 0))


def test_uint8_output_rounds_half_up_and_clips():
  x = tf.constant([[-3.0, 0.49, 0.5, 1.5, 2.5, 254.5, 255.7, 300.0]])
  out = resize._round_to_uint8(x).numpy()  # pylint: disable=protected-access
  np.testing.assert_array_equal(out, [[0, 0, 1, 2, 3, 255, 255, 255]])
  assert out.dtype == np.uint8
  with pytest.raises(ValueError, match="float32 or uint8"):
    resize.bicubic(tf.zeros([4, 4, 3]), 2, 2, dtype=tf.int32)
  with pytest.raises(ValueError, match="layout must be one of"):
    resize.bicubic(tf.zeros([4, 4, 3]), 2, 2, layout="CHW")
