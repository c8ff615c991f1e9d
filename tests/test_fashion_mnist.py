"""Fashion-MNIST: the IDX reader, the source on generated IDX folders, the config, and (where
Debian's dataset-fashion-mnist is installed) the real files."""

import gzip
import json
import os

import numpy as np
import pytest

from mae_jax import experiment
from mae_jax.data import idx, sources
from mae_jax.data.base import DataSource
from mae_jax.errors import DatasetUnavailableError
from tests.helpers import load_config

# IDX dtype codes of the NumPy dtypes the tests write.
CODES = {np.dtype("u1"): 0x08, np.dtype("i1"): 0x09, np.dtype("i2"): 0x0B,
         np.dtype("i4"): 0x0C, np.dtype("f4"): 0x0D, np.dtype("f8"): 0x0E}
SIZES = {"train": 64, "test": 24}


def idx_bytes(array: np.ndarray) -> bytes:
  """`array` as an IDX file: magic (0, 0, dtype code, rank), big-endian dims, big-endian data."""
  header = bytes([0, 0, CODES[array.dtype], array.ndim]) + np.array(array.shape, ">u4").tobytes()
  return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_idx(path: str, array: np.ndarray) -> str:
  """Writes `array` to `path` as IDX, gzipped if the path ends in .gz."""
  opener = gzip.open if path.endswith(".gz") else open
  with opener(path, "wb") as f:
    f.write(idx_bytes(array))
  return path


def make_folder(root: str, sizes: dict[str, int] = SIZES, gz: bool = False, side: int = 28,
                num_classes: int = 10) -> dict[str, tuple[np.ndarray, np.ndarray]]:
  """The four standard files of random grey images and labels 0..num_classes-1 in `root`."""
  os.makedirs(root, exist_ok=True)
  rng = np.random.default_rng(0)
  arrays = {}
  for split, n in sizes.items():
    images = rng.integers(0, 256, (n, side, side), dtype=np.uint8)
    labels = (np.arange(n) % num_classes).astype(np.uint8)
    image_name, label_name = idx.FILES[split]
    suffix = ".gz" if gz else ""
    write_idx(os.path.join(root, image_name + suffix), images)
    write_idx(os.path.join(root, label_name + suffix), labels)
    arrays[split] = (images, labels)
  return arrays


# ---- the IDX format ---------------------------------------------------------------------------

@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("dtype", ["u1", "i1", "i2", "i4", "f4", "f8"])
def test_read_idx_round_trips_every_dtype_plain_and_gzipped(tmp_path, suffix, dtype):
  array = (np.arange(2 * 3 * 5) - 7).reshape(2, 3, 5).astype(dtype)
  read = idx.read_idx(write_idx(str(tmp_path / f"a.idx{suffix}"), array))
  assert read.dtype == np.dtype(dtype) and read.dtype.isnative
  np.testing.assert_array_equal(read, array)


def test_read_idx_errors_name_the_file_and_the_fault(tmp_path):
  path = str(tmp_path / "x-idx3-ubyte")
  with pytest.raises(DatasetUnavailableError, match=f"IDX file {path} does not exist"):
    idx.read_idx(path)
  good = idx_bytes(np.zeros((4, 28, 28), np.uint8))
  for data, message in [(b"", "bad magic number .empty file."),
                        (b"\x00\x00\x07\x03" + good[4:], "bad magic number 00000703"),
                        (b"PK\x03\x04" + good[4:], "bad magic number 504b0304"),
                        (good[:10], "truncated: its header names 3 dimensions"),
                        (good[:-1], r"truncated: shape \(4, 28, 28\) of uint8 needs 3136 bytes"),
                        (good + b"\x00", "too long")]:
    with open(path, "wb") as f:
      f.write(data)
    with pytest.raises(DatasetUnavailableError, match=f"{path} is .*{message}"):
      idx.read_idx(path)
  gz = str(tmp_path / "x-idx3-ubyte.gz")
  with open(gz, "wb") as f:
    f.write(gzip.compress(good)[:-10])     # the end of the stream and its checksum cut off
  with pytest.raises(DatasetUnavailableError, match=f"{gz} is not a complete gzip file"):
    idx.read_idx(gz)


def test_read_folder_takes_plain_or_gz_and_checks_the_pairs(tmp_path):
  root = str(tmp_path / "gz")
  arrays = make_folder(root, gz=True)
  assert idx.has_files(root)
  read = idx.read_folder(root, 10)
  for split in idx.SPLITS:
    np.testing.assert_array_equal(read[split][0], arrays[split][0])
    assert read[split][1].dtype == np.int32
    np.testing.assert_array_equal(read[split][1], arrays[split][1])
  assert idx.num_classes(read) == 10
  with pytest.raises(ValueError):
    read["train"][0][0, 0, 0] = 1       # the cached arrays are shared: read-only

  bad = str(tmp_path / "bad")
  make_folder(bad)
  write_idx(os.path.join(bad, "t10k-labels-idx1-ubyte"), np.zeros(23, np.uint8))
  with pytest.raises(DatasetUnavailableError,
                     match="t10k-images-idx3-ubyte has 24 images but .*t10k-labels-idx1-ubyte "
                           "has 23 labels"):
    idx.read_folder(bad)
  write_idx(os.path.join(bad, "t10k-labels-idx1-ubyte"), np.full(24, 10, np.uint8))
  with pytest.raises(DatasetUnavailableError, match="label 10 is outside 0..9"):
    idx.read_folder(bad, 10)
  os.remove(os.path.join(bad, "train-labels-idx1-ubyte"))
  assert not idx.has_files(bad)
  with pytest.raises(DatasetUnavailableError,
                     match=r"train-labels-idx1-ubyte \(or train-labels-idx1-ubyte.gz\) is missing"):
    idx.read_folder(bad)


# ---- the source -------------------------------------------------------------------------------

@pytest.mark.parametrize("prefix", ["fashion_mnist:", "idx:"])
def test_source_on_a_generated_folder(tmp_path, prefix):
  root = str(tmp_path / "fm")
  arrays = make_folder(root, gz=prefix == "idx:", num_classes=7 if prefix == "idx:" else 10)
  source = sources.get_source(f"{prefix}{root}")
  assert isinstance(source, DataSource)
  assert source.name == f"{prefix}{root}"
  assert source.splits == ("train", "test") and source.split_sizes == SIZES
  # fashion_mnist: always has its 10 classes; a plain IDX folder has as many as its labels say.
  num_classes = 10 if prefix == "fashion_mnist:" else 7
  assert source.num_classes == num_classes
  assert source.describe() == f"{SIZES}, {num_classes} classes"
  assert (source.train_split, source.eval_split) == ("train", "test")
  for split, n in SIZES.items():
    examples = list(source.load(split).as_numpy_iterator())
    assert len(examples) == n
    images = np.stack([e["image"] for e in examples])
    labels = np.array([e["label"] for e in examples])
    assert images.shape == (n, 28, 28, 3) and images.dtype == np.uint8
    assert labels.dtype == np.int32 and 0 <= labels.min() and labels.max() < num_classes
    # Grey repeated into RGB, in the files' order.
    for c in range(3):
      np.testing.assert_array_equal(images[..., c], arrays[split][0])
    np.testing.assert_array_equal(labels, arrays[split][1])


def test_missing_folder_is_a_dataset_error(tmp_path):
  with pytest.raises(DatasetUnavailableError, match="IDX dataset folder .* does not exist"):
    sources.get_source(f"fashion_mnist:{tmp_path}/none")


def test_fashion_mnist_prefers_prepared_tfds_then_debian_files(tmp_path, monkeypatch):
  debian = str(tmp_path / "debian")
  make_folder(debian, gz=True)
  monkeypatch.setattr(idx, "FASHION_MNIST_DIR", debian)
  tfds_calls = []
  monkeypatch.setattr(sources, "_tfds_source",
                      lambda name, data_dir, file_format="": tfds_calls.append(name) or "tfds")
  empty_data_dir = str(tmp_path / "tfds")
  # TFDS has nothing prepared: the Debian files, without a download attempt.
  source = sources.get_source("fashion_mnist", empty_data_dir)
  assert source.name == f"fashion_mnist:{debian}" and source.split_sizes == SIZES
  assert not tfds_calls
  # Neither: TFDS (which downloads it, or says what to fetch); tfds:NAME always goes there.
  monkeypatch.setattr(idx, "FASHION_MNIST_DIR", str(tmp_path / "none"))
  assert sources.get_source("fashion_mnist", empty_data_dir) == "tfds"
  assert sources.get_source("tfds:fashion_mnist", empty_data_dir) == "tfds"
  assert tfds_calls == ["fashion_mnist", "fashion_mnist"]


def test_smoke_config_validates():
  config = load_config("fashion_mnist.py", "smoke")
  experiment.validate(config)
  assert config.data.image_size == 28 and config.data.dataset == "fashion_mnist"


@pytest.mark.skipif(not idx.has_files(idx.FASHION_MNIST_DIR),
                    reason="Debian's dataset-fashion-mnist is not installed")
def test_the_real_debian_files(tmp_path):
  # An empty TFDS data dir, so that a TFDS copy elsewhere cannot answer instead.
  source = sources.get_source("fashion_mnist", str(tmp_path))
  assert source.name == f"fashion_mnist:{idx.FASHION_MNIST_DIR}"
  assert source.split_sizes == {"train": 60_000, "test": 10_000} and source.num_classes == 10
  images, labels = idx.read_folder(idx.FASHION_MNIST_DIR, 10)["train"]
  assert images.shape == (60_000, 28, 28)
  np.testing.assert_array_equal(np.bincount(labels), [6000] * 10)
  # The config's normalisation is the training images' own.
  config = load_config("fashion_mnist.py")
  pixels = images / 255.0
  assert config.data.mean[0] == pytest.approx(pixels.mean(), abs=1e-4)
  assert config.data.std[0] == pytest.approx(pixels.std(), abs=1e-4)


@pytest.mark.slow
def test_smoke_run_on_a_generated_folder(tmp_path):
  root = str(tmp_path / "fm")
  make_folder(root)
  config = load_config("fashion_mnist.py", "smoke")
  config.data.dataset = f"fashion_mnist:{root}"
  workdir = str(tmp_path / "run")
  experiment.run(config, workdir)
  with open(os.path.join(workdir, "summary.json")) as f:
    summary = json.load(f)
  assert summary["pretrain"]["steps"] > 0 and 0 < summary["pretrain"]["loss"] < 10
  for stage in ("linprobe", "finetune"):
    assert 0 <= summary[stage]["top1"] <= summary[stage]["top5"] <= 100
  assert set(summary["baselines"]) == {"linprobe_random_init", "finetune_random_init",
                                       "raw_pixels"}
