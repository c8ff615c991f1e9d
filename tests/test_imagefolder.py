"""The image-folder dataset (root/<split>/<class>/<image>) and fused JPEG decode-and-crop, on
generated folders: RGB and grayscale JPEGs, RGBA PNGs."""

import io
import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from sklearn.datasets import load_sample_images

from mae_jax.data import decoding
from mae_jax.data import pipeline
from mae_jax.data import sources
from mae_jax.errors import DatasetUnavailableError

CLASSES = ("cat", "dog", "eel")
HALF = (0.5, 0.5, 0.5)


def _write(path: str, pixels: np.ndarray) -> None:
  os.makedirs(os.path.dirname(path), exist_ok=True)
  if path.endswith(".png"):
    encoded = tf.io.encode_png(pixels)
  else:
    encoded = tf.io.encode_jpeg(pixels, quality=95)
  tf.io.write_file(path, encoded)


def make_folder(root: str, per_class: int = 4, size: tuple[int, int] = (30, 40)) -> None:
  """Image k of class c is constant red = 40 * c + 10 (gray JPEGs and RGBA PNGs included)."""
  for split, count in (("train", per_class), ("val", 2)):
    for c, name in enumerate(CLASSES):
      for k in range(count):
        value = 40 * c + 10
        if k % 3 == 1:        # grayscale JPEG
          _write(f"{root}/{split}/{name}/{k}.JPG", np.full(size + (1,), value, np.uint8))
        elif k % 3 == 2:      # RGBA PNG
          pixels = np.full(size + (4,), (value, 200, 30, 255), np.uint8)
          _write(f"{root}/{split}/{name}/{k}.png", pixels)
        else:
          _write(f"{root}/{split}/{name}/{k}.jpg", np.full(size + (3,), (value, 200, 30),
                                                           np.uint8))
  with open(f"{root}/train/cat/notes.txt", "w") as f:   # not an image: ignored
    f.write("ignored")


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> str:
  root = str(tmp_path_factory.mktemp("images"))
  make_folder(root)
  return root


def test_splits_classes_and_labels(folder):
  source = sources.get_source(f"imagefolder:{folder}")
  assert source.num_classes == 3
  assert source.split_sizes == {"train": 12, "val": 6}
  assert (source.train_split, source.eval_split) == ("train", "val")
  examples = list(source.load("train").as_numpy_iterator())
  assert [int(ex["label"]) for ex in examples] == [0] * 4 + [1] * 4 + [2] * 4
  for ex in examples:
    image = ex["image"]
    assert image.dtype == np.uint8 and image.shape == (30, 40, 3)
    assert abs(int(image[..., 0].mean()) - (40 * int(ex["label"]) + 10)) <= 2   # the right file
  encoded = list(source.load_encoded("train").as_numpy_iterator())
  assert all(isinstance(ex["image"], bytes) for ex in encoded)


def test_fused_decode_and_crop_equals_decode_then_crop():
  rng = np.random.default_rng(0)
  smooth = tf.image.resize(rng.uniform(0, 255, (8, 10, 3)), (64, 80)).numpy().astype(np.uint8)
  for encoded in (tf.io.encode_jpeg(smooth, quality=90), tf.io.encode_png(smooth),
                  tf.io.encode_jpeg(smooth[..., :1], quality=90)):
    full = decoding.decode(encoded).numpy()
    assert decoding.header(encoded)["size"].numpy().tolist() == [64, 80]
    crop = decoding.decode_and_crop(encoded, [8, 16, 40, 40]).numpy()
    assert crop.shape == (40, 40, 3)
    diff = np.abs(crop.astype(int) - full[8:48, 16:56])
    if tf.io.is_jpeg(encoded):
      # libjpeg upsamples chroma from the window's own blocks: its edge pixels may differ.
      assert diff[2:-2, 2:-2].max() <= 2 and diff.mean() < 0.5
    else:
      assert diff.max() == 0


def test_jpeg_decoding_matches_pil():
  """PIL (the official loader) decodes with libjpeg's accurate IDCT; so do both our paths."""
  photo = load_sample_images().images[0][:200, :260]
  buffer = io.BytesIO()
  Image.fromarray(photo).save(buffer, format="JPEG", quality=90)
  encoded = buffer.getvalue()
  expected = np.asarray(Image.open(io.BytesIO(encoded)).convert("RGB")).astype(int)
  np.testing.assert_array_equal(decoding.decode(tf.constant(encoded)).numpy(), expected)
  crop = decoding.decode_and_crop(tf.constant(encoded), [16, 24, 152, 196],
                                  all_jpeg=True).numpy().astype(int)
  diff = np.abs(crop - expected[16:168, 24:220])
  # Only chroma upsampling at the window's edges may differ; TF's default fast IDCT would be
  # ~0.7 levels off on average.
  assert diff[2:-2, 2:-2].max() == 0 and diff.mean() < 0.05


def test_training_batches_from_encoded_files_match_decoded_pixels(folder):
  """The same crops and flips whether the split is cached encoded (files) or decoded."""
  files = sources.get_source(f"imagefolder:{folder}")
  pixels = list(files.load("train").as_numpy_iterator())
  decoded = sources.Source(
      name="decoded", num_classes=3, split_sizes={"train": 12}, train_split="train",
      eval_split="train",
      loader=lambda split: tf.data.Dataset.from_generator(
          lambda: iter(pixels), output_signature={
              "image": tf.TensorSpec([None, None, 3], tf.uint8),
              "label": tf.TensorSpec([], tf.int32)}))
  args = dict(batch_size=6, image_size=16, crop_scale=(0.2, 1.0), hflip=True, mean=HALF,
              std=HALF, seed=4)
  for a, b, _ in zip(pipeline.train_batches(files, "train", **args),
                     pipeline.train_batches(decoded, "train", **args), range(3)):
    np.testing.assert_array_equal(a["label"], b["label"])
    diff = np.abs(a["image"].astype(np.int32) - b["image"].astype(np.int32))
    assert a["image"].dtype == np.uint8 and diff.max() <= 6, diff.max()


def test_missing_folder_is_a_clear_error(tmp_path):
  with pytest.raises(DatasetUnavailableError, match="does not exist.*expected .*/train/"
                     "<class>/<image>.*val/<class>/<image>"):
    sources.get_source(f"imagefolder:{tmp_path}/nowhere")
  os.makedirs(tmp_path / "only" / "val" / "cat")
  with pytest.raises(DatasetUnavailableError, match="has no 'train' split"):
    sources.get_source(f"imagefolder:{tmp_path}/only")


def test_unknown_class_in_an_eval_split_is_refused(tmp_path):
  root = str(tmp_path)
  _write(f"{root}/train/cat/0.jpg", np.zeros((8, 8, 3), np.uint8))
  _write(f"{root}/val/cow/0.jpg", np.zeros((8, 8, 3), np.uint8))
  with pytest.raises(ValueError, match="val/cow is a class that .*train does not have"):
    sources.get_source(f"imagefolder:{root}")
