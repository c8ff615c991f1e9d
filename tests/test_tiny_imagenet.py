"""Tests for the TinyImageNet TFDS builder on a small generated archive with the real layout.

The fake tiny-imagenet-200.zip has the real 200 classes (synthetic WordNet ids), 2 training
images per class, 10 validation and 2 unlabelled test images, some of them grayscale. Every
image is a constant colour whose red channel is its class index, so labels can be checked
against pixels.
"""

import os
import socket
import time
import zipfile

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from mae_jax.data import pipeline
from mae_jax.data import reading
from mae_jax.data import sources
from mae_jax.data import tiny_imagenet

WNIDS = [f"n{10_000_000 + 7 * i:08d}" for i in range(200)]    # already sorted: class i
TRAIN_PER_CLASS = 2
GRAY_TRAIN = {"n10000000_1.JPEG", "n10000007_0.JPEG"}
VAL_CLASSES = [5, 0, 199, 5, 42, 7, 7, 150, 3, 99]               # class of val_<k>.JPEG
GRAY_VAL = {"val_4.JPEG"}
HALF = (0.5, 0.5, 0.5)


def _jpeg(class_index: int, gray: bool) -> bytes:
  """A 64x64 JPEG of constant colour: red (or gray level) = class index."""
  if gray:
    pixels = np.full((64, 64, 1), class_index, np.uint8)
  else:
    pixels = np.empty((64, 64, 3), np.uint8)
    pixels[...] = (class_index, 255 - class_index, 128)
  return tf.io.encode_jpeg(pixels, quality=100).numpy()


def _write_archive(path: str, reverse: bool = False) -> None:
  """A tiny-imagenet-200.zip with the real layout; `reverse` writes the members backwards."""
  root = "tiny-imagenet-200"
  members = {
      # Unsorted, as in the real file: the builder sorts the ids.
      f"{root}/wnids.txt": "\n".join(WNIDS[::-1]) + "\n",
      # Names for many more ids than the 200, in another order.
      f"{root}/words.txt": "".join(
          f"{wnid}\tthing {int(wnid[1:])}, object\n"
          for wnid in sorted(WNIDS + ["n00000001", "n99999999"], reverse=True)),
      f"{root}/val/val_annotations.txt": "".join(
          f"val_{k}.JPEG\t{WNIDS[c]}\t0\t3\t40\t62\n" for k, c in enumerate(VAL_CLASSES)),
  }
  for c, wnid in enumerate(WNIDS):
    members[f"{root}/train/{wnid}/{wnid}_boxes.txt"] = f"{wnid}_0.JPEG\t0\t0\t63\t63\n"
    for k in range(TRAIN_PER_CLASS):
      name = f"{wnid}_{k}.JPEG"
      members[f"{root}/train/{wnid}/images/{name}"] = _jpeg(c, name in GRAY_TRAIN)
  for k, c in enumerate(VAL_CLASSES):
    members[f"{root}/val/images/val_{k}.JPEG"] = _jpeg(c, f"val_{k}.JPEG" in GRAY_VAL)
  for k in range(2):
    members[f"{root}/test/images/test_{k}.JPEG"] = _jpeg(0, False)
  with zipfile.ZipFile(path, "w") as zf:
    for name in sorted(members, reverse=reverse):
      zf.writestr(name, members[name])


def _examples(builder: tfds.core.DatasetBuilder, split: str) -> list[dict]:
  read_config = tfds.ReadConfig(interleave_cycle_length=1)
  ds = builder.as_dataset(split=split, shuffle_files=False, read_config=read_config)
  return list(ds.as_numpy_iterator())


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> tfds.core.DatasetBuilder:
  """The builder prepared from the fake archive in a manual dir given by DownloadConfig."""
  manual_dir = tmp_path_factory.mktemp("manual")
  _write_archive(str(manual_dir / tiny_imagenet.ARCHIVE))
  builder = tfds.builder("tiny_imagenet", data_dir=str(tmp_path_factory.mktemp("tfds")))
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
      manual_dir=str(manual_dir)))
  return builder


def test_splits_and_features(prepared):
  info = tfds.builder("tiny_imagenet", data_dir=prepared.data_dir_root).info  # as read back
  assert {s: info.splits[s].num_examples for s in info.splits} == {
      "train": 200 * TRAIN_PER_CLASS, "validation": len(VAL_CLASSES)}     # no "test" split
  assert info.features["label"].names == WNIDS
  assert info.features["image"].shape == (64, 64, 3)
  assert info.version == "1.0.0"


def test_images_are_rgb_and_labels_match_folders_and_annotations(prepared):
  train = _examples(prepared, "train")
  val = _examples(prepared, "validation")
  expected = {f"{wnid}_{k}.JPEG": c for c, wnid in enumerate(WNIDS)
              for k in range(TRAIN_PER_CLASS)}
  expected.update({f"val_{k}.JPEG": c for k, c in enumerate(VAL_CLASSES)})
  ids = [ex["id"].decode() for ex in train + val]
  assert sorted(ids) == sorted(expected)
  for ex, name in zip(train + val, ids):
    image = ex["image"]
    assert image.dtype == np.uint8 and image.shape == (64, 64, 3)
    assert ex["label"] == expected[name]
    assert abs(image[..., 0].mean() - expected[name]) < 2        # the pixels of that class
    if name in GRAY_TRAIN | GRAY_VAL:
      assert np.array_equal(image[..., 0], image[..., 1])
      assert np.array_equal(image[..., 0], image[..., 2])
    else:
      assert abs(image[..., 1].mean() - (255 - expected[name])) < 2


def test_human_readable_class_names_come_from_words_txt(prepared):
  expected = [f"thing {int(wnid[1:])}, object" for wnid in WNIDS]
  assert tiny_imagenet.class_names(prepared) == expected
  # A fresh builder reads them back from the prepared data dir.
  assert tiny_imagenet.class_names(str(prepared.data_dir_root)) == expected


def test_class_names_of_an_unprepared_dataset_is_a_clear_error(tmp_path):
  with pytest.raises(ValueError, match="No TinyImageNet class names.*prepare"):
    tiny_imagenet.class_names(str(tmp_path))


def test_get_source_prepares_from_the_default_manual_dir_in_a_fixed_order(prepared, tmp_path):
  # The same archive written in the opposite member order, in <data_dir>/downloads/manual/.
  manual_dir = tmp_path / "downloads" / "manual"
  os.makedirs(manual_dir)
  _write_archive(str(manual_dir / tiny_imagenet.ARCHIVE), reverse=True)
  source = sources.get_source("tiny_imagenet", data_dir=str(tmp_path))
  assert source.num_classes == 200
  assert source.split_sizes == {"train": 200 * TRAIN_PER_CLASS, "validation": len(VAL_CLASSES)}
  assert (source.train_split, source.eval_split) == ("train", "validation")

  # The example order depends on the file names only, not on the archive's order.
  rebuilt = tfds.builder("tiny_imagenet", data_dir=str(tmp_path))
  for split in ("train", "validation"):
    assert [ex["id"] for ex in _examples(rebuilt, split)] == [
        ex["id"] for ex in _examples(prepared, split)]
  loaded = list(source.load("validation").as_numpy_iterator())
  assert [int(ex["label"]) for ex in loaded] == [
      int(ex["label"]) for ex in _examples(prepared, "validation")]

  batch = next(pipeline.train_batches(source, "train", batch_size=8, image_size=32,
                                      crop_scale=(0.2, 1.0), hflip=True, mean=HALF, std=HALF,
                                      seed=0))
  assert batch["image"].shape == (8, 32, 32, 3) and batch["image"].dtype == np.uint8
  assert np.all((0 <= batch["label"]) & (batch["label"] < 200))
  evals = list(pipeline.eval_batches(source, "validation", batch_size=4, image_size=64))
  assert len(evals) == 3 and sum(b["mask"].sum() for b in evals) == len(VAL_CLASSES)
  np.testing.assert_array_equal(np.concatenate([b["label"] for b in evals])[:10],
                                [ex["label"] for ex in loaded])


def test_the_config_evaluates_one_whole_64px_view():
  """configs/tiny_imagenet.py's eval view is the study's: each 64x64 image as it is; the
  resize-then-crop (eval_crop_ratio 0.875) is the option, and shows less of the image."""
  from mae_jax.tasks import images  # pylint: disable=g-import-not-at-top
  from tests.helpers import load_config  # pylint: disable=g-import-not-at-top
  pixels = np.random.default_rng(0).integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
  source = sources.Source(
      "tiny_imagenet", 200, {"validation": 3}, "validation", "validation",
      lambda split: tf.data.Dataset.from_tensor_slices(
          {"image": pixels, "label": np.arange(3, dtype=np.int32)}))
  config = load_config("tiny_imagenet.py")
  assert (config.data.image_size, config.data.eval_crop_ratio) == (64, 1.0)
  np.testing.assert_array_equal(images.eval_images(config, source, 3), pixels)
  config.data.eval_crop_ratio = 0.875
  cropped = images.eval_images(config, source, 3)
  assert cropped.shape == pixels.shape and not np.array_equal(cropped, pixels)


def _refuse_dns(*args, **kwargs):
  raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")


def test_offline_without_archive_is_one_quick_clear_error(tmp_path, monkeypatch):
  # An offline machine: no host name resolves (whatever the machine running the test can do).
  monkeypatch.setattr(socket, "getaddrinfo", _refuse_dns)
  start = time.monotonic()
  with pytest.raises(RuntimeError) as err:
    sources.get_source("tiny_imagenet", data_dir=str(tmp_path))
  assert time.monotonic() - start < 10                           # no minutes of retries
  message = str(err.value)
  for part in ("'tiny_imagenet'", "tiny-imagenet-200.zip", tiny_imagenet.URL,
               f"{tmp_path}/downloads/manual/", "--config.data.data_dir", "TFDS_DATA_DIR"):
    assert part in message


def test_failed_download_is_the_same_clear_error(tmp_path, monkeypatch):
  # The host answers but the download fails (a moved file, an interrupted transfer).
  monkeypatch.setattr(tiny_imagenet.requests, "head", lambda *args, **kwargs: None)
  failure = tfds.download.DownloadError("404 Not Found")

  def download(self, *args, **kwargs):
    raise failure

  monkeypatch.setattr(tfds.download.DownloadManager, "download", download)
  with pytest.raises(RuntimeError, match="'tiny_imagenet'.*tiny-imagenet-200.zip") as err:
    sources.get_source("tiny_imagenet", data_dir=str(tmp_path))
  assert err.value.__cause__ is failure


def test_mock_data_works(tmp_path):
  """The recipe of tests/test_data.py's `mock_pets`: metadata written from the builder's code."""
  num_examples = 6
  builder = tfds.builder("tiny_imagenet", data_dir=str(tmp_path))
  builder.info.set_splits(tfds.core.SplitDict([
      tfds.core.SplitInfo(name=split, shard_lengths=[num_examples], num_bytes=0)
      for split in ("train", "validation")]))
  os.makedirs(builder.data_dir)
  builder.info.write_to_directory(builder.data_dir)
  with tfds.testing.mock_data(num_examples=num_examples, data_dir=str(tmp_path),
                              policy=tfds.testing.MockPolicy.USE_FILES):
    source = sources.get_source("tiny_imagenet", data_dir=str(tmp_path))
    assert (source.num_classes, source.split_sizes) == (
        200, {"train": num_examples, "validation": num_examples})
    assert source.eval_split == "validation"
    examples = list(source.load("train").as_numpy_iterator())
    assert len(examples) == num_examples
    assert all(ex["image"].shape == (64, 64, 3) and ex["image"].dtype == np.uint8
               for ex in examples)
    batch = next(pipeline.train_batches(source, "train", batch_size=2, image_size=16,
                                        crop_scale=(0.2, 1.0), hflip=True, mean=HALF, std=HALF,
                                        seed=0))
    assert batch["image"].shape == (2, 16, 16, 3)


@pytest.mark.slow
def test_array_record_preparation_streams_the_same_batches(prepared, tmp_path):
  manual_dir = tmp_path / "downloads" / "manual"
  os.makedirs(manual_dir)
  _write_archive(str(manual_dir / tiny_imagenet.ARCHIVE))
  source = sources.get_source("tiny_imagenet", data_dir=str(tmp_path), file_format="array_record")
  assert source.random_access is not None
  assert reading.streams(source, "train", "stream", cache_max_gb=4.0)
  args = dict(batch_size=8, image_size=32, crop_scale=(0.2, 1.0), hflip=True, seed=5,
              start_step=3)
  cached = pipeline.train_batches(source, "train", **args)
  streamed = pipeline.train_batches(source, "train", stream=True, **args)
  for _, a, b in zip(range(3), cached, streamed):
    np.testing.assert_array_equal(a["image"], b["image"])
    np.testing.assert_array_equal(a["label"], b["label"])
  # Prepared as TFDS's default tfrecord, a split has no random access: it is read into memory.
  tfrecord = sources.get_source("tiny_imagenet", data_dir=prepared.data_dir_root)
  assert tfrecord.random_access is None
  assert not reading.streams(tfrecord, "train", "auto", cache_max_gb=0.0)
