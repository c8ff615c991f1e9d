"""IDX files (MNIST's format) read with NumPy: MNIST, Fashion-MNIST, KMNIST and kin.

An IDX file is a 4-byte magic number (two zero bytes, a dtype code, the number of dimensions),
one big-endian uint32 per dimension, then the values in C order, big-endian. A dataset folder
holds the four standard files, each plain or gzipped:
  train-images-idx3-ubyte  train-labels-idx1-ubyte  t10k-images-idx3-ubyte  t10k-labels-idx1-ubyte
Splits "train" and "test" keep the files' order. A file that is missing, not IDX, or cut short
is a DatasetUnavailableError naming it. This module imports no TensorFlow.
"""

import functools
import gzip
import os
import zlib

import numpy as np

from mae_jax.errors import DatasetUnavailableError

# Debian's `dataset-fashion-mnist` package (Expat licence): the four files, gzipped.
FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
SPLITS = ("train", "test")
# split -> (images file, labels file), without the optional ".gz".
FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
         "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
# The IDX dtype codes; every multi-byte type is big-endian.
_DTYPES = {0x08: np.dtype("u1"), 0x09: np.dtype("i1"), 0x0B: np.dtype(">i2"),
           0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}

Arrays = dict[str, tuple[np.ndarray, np.ndarray]]


def read_idx(path: str) -> np.ndarray:
  """The array in IDX file `path` (gzipped if it ends in .gz), in native byte order."""
  raw = _read_bytes(path)
  if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _DTYPES:
    raise DatasetUnavailableError(
        f"{path} is not an IDX file: bad magic number {raw[:4].hex() or '(empty file)'} "
        f"(expected 0000, a dtype code in {sorted(hex(c) for c in _DTYPES)}, the rank)")
  dtype, rank = _DTYPES[raw[2]], raw[3]
  header = 4 + 4 * rank
  if len(raw) < header:
    raise DatasetUnavailableError(f"{path} is truncated: its header names {rank} dimensions "
                                  f"but the file has {len(raw)} bytes")
  shape = tuple(int(n) for n in np.frombuffer(raw, ">u4", rank, offset=4))
  expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
  if len(raw) - header != expected:
    state = "truncated" if len(raw) - header < expected else "too long"
    raise DatasetUnavailableError(f"{path} is {state}: shape {shape} of {dtype.name} needs "
                                  f"{expected} bytes of data, the file has {len(raw) - header}")
  return np.frombuffer(raw, dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def find_file(folder: str, name: str) -> str:
  """folder/name, else folder/name.gz; DatasetUnavailableError if neither exists."""
  for path in (os.path.join(folder, name), os.path.join(folder, name + ".gz")):
    if os.path.isfile(path):
      return path
  raise DatasetUnavailableError(f"IDX dataset {folder!r}: {name} (or {name}.gz) is missing; the "
                                f"folder needs {', '.join(n for f in FILES.values() for n in f)}")


def has_files(folder: str) -> bool:
  """Whether `folder` holds the four standard files (plain or .gz)."""
  return all(os.path.isfile(path) or os.path.isfile(path + ".gz")
             for names in FILES.values() for path in (os.path.join(folder, n) for n in names))


@functools.lru_cache(maxsize=4)
def read_folder(folder: str, num_classes: int = 0) -> Arrays:
  """{split: (images uint8 (N, H, W), labels int32 (N,))} of an IDX folder, read-only, in file
  order. With `num_classes` > 0, a label outside [0, num_classes) is an error."""
  arrays = {}
  for split, (image_name, label_name) in FILES.items():
    image_path, label_path = find_file(folder, image_name), find_file(folder, label_name)
    images, labels = read_idx(image_path), read_idx(label_path)
    if images.ndim != 3 or images.dtype != np.uint8:
      raise DatasetUnavailableError(f"{image_path}: expected uint8 images (N, H, W), found "
                                    f"{images.dtype.name} of shape {images.shape}")
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
      raise DatasetUnavailableError(f"{label_path}: expected integer labels (N,), found "
                                    f"{labels.dtype.name} of shape {labels.shape}")
    if len(images) != len(labels):
      raise DatasetUnavailableError(f"{image_path} has {len(images)} images but {label_path} "
                                    f"has {len(labels)} labels")
    bad = labels[(labels < 0) | (labels >= num_classes)] if num_classes else labels[labels < 0]
    if bad.size:
      allowed = f"0..{num_classes - 1}" if num_classes else "0 or more"
      raise DatasetUnavailableError(f"{label_path}: label {int(bad[0])} is outside {allowed}")
    arrays[split] = (images, labels.astype(np.int32))
  if arrays["train"][0].shape[1:] != arrays["test"][0].shape[1:]:
    raise DatasetUnavailableError(f"IDX dataset {folder!r}: train images are "
                                  f"{arrays['train'][0].shape[1:]}, test images "
                                  f"{arrays['test'][0].shape[1:]}")
  for images, labels in arrays.values():
    # The cache hands out the same arrays to every caller; nobody may edit them in place.
    images.setflags(write=False)
    labels.setflags(write=False)
  return arrays


def num_classes(arrays: Arrays) -> int:
  """1 + the largest label of any split (labels are 0-based class indices)."""
  return 1 + max(int(labels.max(initial=-1)) for _, labels in arrays.values())


def _read_bytes(path: str) -> bytes:
  """The file's bytes, gunzipped if it ends in .gz; one-line errors naming the file."""
  try:
    if path.endswith(".gz"):
      with gzip.open(path, "rb") as f:
        return f.read()
    with open(path, "rb") as f:
      return f.read()
  except FileNotFoundError as err:
    raise DatasetUnavailableError(f"IDX file {path} does not exist") from err
  except (gzip.BadGzipFile, EOFError, zlib.error) as err:
    raise DatasetUnavailableError(f"{path} is not a complete gzip file ({err})") from err
