"""mae-jax-prepare: a folder of images packed once into array_record shards, for streaming.

  mae-jax-prepare --images=/data/photos --out=/data/photos_ar
  mae-jax --config=configs/X.py --config.data.dataset=images:/data/photos_ar ...

Why: an `images:` folder already streams file by file, but millions of small files are slow to
list and to open on network file systems and buckets (one request each). The shards hold the
same encoded bytes (no re-encoding: the same pixels), 2,048 images per file, in the folder's
order, read by index with array_record (Google's random-access record format, the one TFDS and
Grain use). `images:OUT` then reads the shards and gives the same examples, split and batches as
`images:` on the original folder.

The writing processes import neither TensorFlow nor JAX (this module imports only the standard
library and NumPy at its top), so a worker per core costs little memory.

Resumable: each shard is written under a temporary name and renamed when complete, so a rerun
(after a crash or a preemption) writes only the missing shards; the manifest, written last,
marks a complete preparation. Shards are written in parallel, one process per core.

Files that are not images are left out as `images:` leaves them out (images.py), and the
manifest counts them ("unreadable"); the images' relative paths are kept beside the shards
(NAMES), so that training names an image that does not decode (truncated, corrupt: packed as it
is, skipped when training decodes it) by its original path.
"""

import argparse
import hashlib
import json
import multiprocessing
import os
import sys
import time
from typing import Any, Callable

import numpy as np

MANIFEST = "mae_jax_images.json"
NAMES = "mae_jax_images_names.txt"   # the packed images' paths relative to the source, in order
FORMAT = "mae_jax.images.array_record/1"
_WRITER_OPTIONS = "group_size:1"   # one record per chunk: reading one image reads only it


def is_prepared(root: str) -> bool:
  return os.path.exists(os.path.join(root, MANIFEST))


def _fingerprint(root: str, paths: list[str]) -> str:
  names = "\n".join(os.path.relpath(p, root) for p in paths)
  return hashlib.sha1(names.encode()).hexdigest()


def _write_shard(task: tuple[str, list[str]]) -> tuple[str, int, int]:
  from array_record.python import array_record_module  # pylint: disable=g-import-not-at-top
  path, files = task
  tmp = path + ".tmp"
  writer = array_record_module.ArrayRecordWriter(tmp, _WRITER_OPTIONS)
  size = 0
  for file in files:
    with open(file, "rb") as f:
      data = f.read()
    writer.write(data)
    size += len(data)
  writer.close()
  os.replace(tmp, path)
  return path, len(files), size


def prepare(images_root: str, out: str, shard_size: int = 2048, workers: int | None = None,
            log: Callable[[str], None] = print) -> dict[str, Any]:
  """Packs the readable images under `images_root` into `out`; returns the manifest."""
  from mae_jax.data import images  # pylint: disable=g-import-not-at-top  (TensorFlow)
  paths, unreadable = images.scan(images.list_images(images_root), log)
  if not paths:
    raise FileNotFoundError(f"Image folder {images_root!r} holds no readable image.")
  fingerprint = _fingerprint(images_root, paths)
  os.makedirs(out, exist_ok=True)
  if is_prepared(out):
    with open(os.path.join(out, MANIFEST)) as f:
      manifest = json.load(f)
    if manifest["fingerprint"] != fingerprint:
      raise ValueError(f"{out} holds a preparation of other images ({manifest['source']}); "
                       f"write to a new --out")
    log(f"{out} is prepared already: {manifest['num_images']} images")
    return manifest
  num_shards = -(-len(paths) // shard_size)
  shards = [dict(file=f"images-{k:05d}-of-{num_shards:05d}.array_record",
                 count=len(paths[k * shard_size:(k + 1) * shard_size]))
            for k in range(num_shards)]
  todo = [(os.path.join(out, s["file"]), paths[k * shard_size:(k + 1) * shard_size])
          for k, s in enumerate(shards) if not os.path.exists(os.path.join(out, s["file"]))]
  log(f"{len(paths)} images from {images_root} into {num_shards} shards in {out}; "
      f"{num_shards - len(todo)} already written")
  start, done, written = time.time(), num_shards - len(todo), 0
  with multiprocessing.get_context("spawn").Pool(workers or os.cpu_count()) as pool:
    for path, count, size in pool.imap_unordered(_write_shard, todo):
      done, written = done + 1, written + size
      rate = written / 2**20 / max(time.time() - start, 1e-6)
      log(f"[{done}/{num_shards}] {os.path.basename(path)}: {count} images, "
          f"{size / 2**20:.1f} MB ({rate:.0f} MB/s)")
  with open(os.path.join(out, NAMES + ".tmp"), "w") as f:
    f.writelines(os.path.relpath(p, images_root) + "\n" for p in paths)
  os.replace(os.path.join(out, NAMES + ".tmp"), os.path.join(out, NAMES))
  manifest = dict(format=FORMAT, source=os.path.abspath(images_root), fingerprint=fingerprint,
                  num_images=len(paths), shard_size=shard_size, shards=shards,
                  unreadable=dict(count=unreadable.count, first=list(unreadable.first)))
  with open(os.path.join(out, MANIFEST + ".tmp"), "w") as f:
    json.dump(manifest, f, indent=2)
  os.replace(os.path.join(out, MANIFEST + ".tmp"), os.path.join(out, MANIFEST))
  log(f"prepared {out}: {len(paths)} images in {num_shards} shards")
  return manifest


class Prepared:
  """The images of a prepared folder, by global index (the original folder's order)."""

  def __init__(self, root: str):
    from array_record.python import array_record_data_source  # pylint: disable=g-import-not-at-top
    with open(os.path.join(root, MANIFEST)) as f:
      self.manifest = json.load(f)
    if self.manifest.get("format") != FORMAT:
      raise ValueError(f"{root}/{MANIFEST}: unknown format {self.manifest.get('format')!r}")
    files = [os.path.join(root, s["file"]) for s in self.manifest["shards"]]
    missing = [f for f in files if not os.path.exists(f)]
    if missing:
      raise FileNotFoundError(f"{root}: shard {missing[0]} is missing; rerun mae-jax-prepare")
    self.root = root
    self.num_images = int(self.manifest["num_images"])
    self._records = array_record_data_source.ArrayRecordDataSource(files)
    self._files = files

  def names(self) -> list[str]:
    """The packed images' original paths, in order; "#<index>" for a preparation without
    NAMES (an older mae-jax-prepare's)."""
    path = os.path.join(self.root, NAMES)
    if not os.path.exists(path):
      return [f"#{i}" for i in range(self.num_images)]
    with open(path) as f:
      return [os.path.join(self.manifest["source"], line.rstrip("\n")) for line in f]

  def __getitem__(self, index: int) -> bytes:
    return self._records[int(index)]

  def many(self, indices: np.ndarray) -> list[bytes]:
    """The images at `indices`, read together (array_record fetches them in parallel)."""
    return self._records.__getitems__([int(i) for i in indices])

  def num_bytes(self, indices: np.ndarray) -> int:
    """Bytes of the images `indices` (estimated from the shards' sizes: images of one folder
    are alike)."""
    total = sum(os.path.getsize(f) for f in self._files)
    return int(total * len(indices) / max(self.num_images, 1))


def main(argv: list[str] | None = None) -> None:
  parser = argparse.ArgumentParser(prog="mae-jax-prepare", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--images", required=True, help="folder of images (any depth)")
  parser.add_argument("--out", required=True, help="folder for the shards and the manifest")
  parser.add_argument("--shard_size", type=int, default=2048, help="images per shard")
  parser.add_argument("--workers", type=int, default=None, help="processes (default: cores)")
  args = parser.parse_args(argv)
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")   # the folder scan imports TensorFlow
  if args.shard_size < 1:
    parser.error("--shard_size must be positive")
  try:
    prepare(args.images, args.out, args.shard_size, args.workers,
            log=lambda line: print(line, flush=True))
  except (FileNotFoundError, ValueError) as err:
    sys.exit(f"mae-jax-prepare: error: {err}")


if __name__ == "__main__":
  main()
