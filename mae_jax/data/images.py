"""Unlabeled images for pretraining: every image file under a folder tree, at any depth.

  config.data.dataset = "images:/path/to/root"

MAE pretraining needs neither labels nor a split: all files whose extension is in
imagefolder.EXTENSIONS (case ignored) count, in sorted order of their relative paths (fixed,
whatever the file system's order). A held-out slice, `holdout` of them but at most
`holdout_max`, evenly spread over that order, is kept out of training for the reconstruction
grids and the eval reconstruction loss; the rest is the training split. Labels are all 0; the
classifier stages refuse such a dataset.

Files that are not images (their header does not parse, up to a JPEG's start of scan) are
skipped and counted: one line at the end of the scan names the count and the first few, and the
stages' result.json counts them (skips.py). Reading the headers is one pass over the folder, in
threads (it is I/O). A file whose header parses but whose data does not decode (truncated,
corrupt) is found only when training decodes it: the pipeline skips and counts it there.
"""

import concurrent.futures
import os
from typing import Callable

import numpy as np

from mae_jax.data.imagefolder import EXTENSIONS
from mae_jax.data.skips import RESULT_SHOWN, Unreadable, listing

PREFIX = "images:"
TRAIN_SPLIT, HOLDOUT_SPLIT = "train", "holdout"


def list_images(root: str) -> list[str]:
  """Paths of every image file under `root`, sorted by relative path.

  Raises FileNotFoundError when `root` is not a folder or holds no image.
  """
  if not os.path.isdir(root):
    raise FileNotFoundError(f"Image folder {root!r} does not exist (config.data.dataset="
                            f"'{PREFIX}{root}' reads every image under it, at any depth).")
  paths = [os.path.join(dirpath, f) for dirpath, _, filenames in os.walk(root)
           for f in filenames if f.lower().endswith(EXTENSIONS)]
  # By relative path, folder by folder: the same order on every file system.
  paths.sort(key=lambda p: os.path.relpath(p, root).split(os.sep))
  if not paths:
    raise FileNotFoundError(f"Image folder {root!r} holds no images ({', '.join(EXTENSIONS)}, "
                            f"at any depth).")
  return paths


def readable(paths: list[str], log: Callable[[str], None] = print, workers: int = 16
             ) -> list[str]:
  """The paths whose image header parses (PIL reads it without decoding the pixels).

  The others are dropped; `log` gets one line with their count and the first few.
  """
  return scan(paths, log, workers)[0]


def scan(paths: list[str], log: Callable[[str], None] = print, workers: int = 16
         ) -> tuple[list[str], Unreadable]:
  """(the readable paths, the others' count and first names): `readable`, and what it left out."""
  from PIL import Image  # pylint: disable=g-import-not-at-top

  def ok(path: str) -> bool:
    try:
      with Image.open(path) as image:
        # PIL reads a JPEG's markers up to the start of scan and sets a tile there: a file cut
        # before it has a size but no tile, and libjpeg (TensorFlow) refuses its header.
        return (image.size[0] > 0 and image.size[1] > 0
                and (image.format != "JPEG" or bool(image.tile)))
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
      return False

  with concurrent.futures.ThreadPoolExecutor(workers) as pool:
    good = list(pool.map(ok, paths, chunksize=256))
  bad = [p for p, g in zip(paths, good) if not g]
  if bad:
    log(f"skipped {len(bad)} of {len(paths)} files that are not readable images: "
        f"{listing(bad)}")
  return [p for p, g in zip(paths, good) if g], Unreadable(len(bad), tuple(bad[:RESULT_SHOWN]))


def holdout_indices(num_images: int, fraction: float, max_images: int) -> np.ndarray:
  """Sorted indices of the held-out images: round(fraction * n), at least 1 (when n > 1), at
  most `max_images`, evenly spaced over 0..n-1 so that every part of the tree is represented."""
  count = min(max(int(round(fraction * num_images)), 1), max_images, num_images - 1)
  if count <= 0:
    return np.zeros((0,), np.int64)
  return np.unique(np.round(np.linspace(0, num_images - 1, count)).astype(np.int64))


def splits(root: str, holdout: float, holdout_max: int, log: Callable[[str], None] = print
           ) -> tuple[dict[str, list[str]], Unreadable]:
  """({"train": paths, "holdout": paths} of the readable images under `root`, the files the scan
  left out)."""
  paths, unreadable = scan(list_images(root), log)
  if not paths:
    raise FileNotFoundError(f"Image folder {root!r} holds no readable image.")
  held = holdout_indices(len(paths), holdout, holdout_max)
  keep = np.ones(len(paths), bool)
  keep[held] = False
  return ({TRAIN_SPLIT: [p for p, k in zip(paths, keep) if k],
           HOLDOUT_SPLIT: [paths[i] for i in held]}, unreadable)
