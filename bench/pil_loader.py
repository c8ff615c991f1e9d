"""The baseline of the input benchmark: the official PyTorch release's loader, rebuilt with PIL.

Per image it does what ImageFolder + the official pretraining transforms do: PIL decode and RGB
convert, torchvision RandomResizedCrop (scale 0.2-1, bicubic), horizontal flip, ToTensor,
Normalize. Whole batches are built by worker processes into shared memory, two in flight per
worker, as a torch DataLoader with that many workers and prefetch factor 2 does; torch itself is
not needed. pipeline.py times it beside ours:

  python -m mae_jax_bench --target=input --data=images:/tmp/photos --pil_workers=2
"""

import math
import multiprocessing
from multiprocessing import shared_memory
import random
import time
from typing import Any

import numpy as np
from PIL import Image

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

_worker: dict[str, Any] = {}   # per worker process: set once by _init


def _init(paths: list[str], shm_name: str, slot_shape: tuple[int, ...], scale: float,
          ratio: tuple[float, float], seed: int) -> None:
  shm = shared_memory.SharedMemory(name=shm_name)
  _worker.update(paths=paths, shm=shm, scale=scale, ratio=ratio, seed=seed,
                 slots=np.ndarray(slot_shape, np.float32, buffer=shm.buf))


def random_resized_crop_params(width: int, height: int, scale: tuple[float, float],
                               ratio: tuple[float, float],
                               rnd: random.Random) -> tuple[int, int, int, int]:
  """torchvision RandomResizedCrop.get_params: (top, left, height, width)."""
  area = width * height
  log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
  for _ in range(10):
    target = area * rnd.uniform(*scale)
    aspect = math.exp(rnd.uniform(*log_ratio))
    w = int(round(math.sqrt(target * aspect)))
    h = int(round(math.sqrt(target / aspect)))
    if 0 < w <= width and 0 < h <= height:
      return rnd.randint(0, height - h), rnd.randint(0, width - w), h, w
  in_ratio = width / height
  if in_ratio < ratio[0]:
    w, h = width, int(round(width / ratio[0]))
  elif in_ratio > ratio[1]:
    h, w = height, int(round(height * ratio[1]))
  else:
    w, h = width, height
  return (height - h) // 2, (width - w) // 2, h, w


def _batch(batch_index: int, slot: int, batch_size: int, size: int) -> int:
  """Builds batch `batch_index` into shared-memory slot `slot` (N, 3, size, size), as torch."""
  paths, out = _worker["paths"], _worker["slots"][slot]
  rnd = random.Random(_worker["seed"] * 1_000_003 + batch_index)
  mean = np.asarray(IMAGENET_MEAN, np.float32)
  std = np.asarray(IMAGENET_STD, np.float32)
  for i in range(batch_size):
    with open(paths[rnd.randrange(len(paths))], "rb") as f:
      image = Image.open(f).convert("RGB")
    top, left, h, w = random_resized_crop_params(image.width, image.height, _worker["scale"],
                                                 _worker["ratio"], rnd)
    image = image.crop((left, top, left + w, top + h)).resize((size, size), Image.BICUBIC)
    if rnd.random() < 0.5:
      image = image.transpose(Image.FLIP_LEFT_RIGHT)
    pixels = np.asarray(image, np.float32) / 255.0                 # ToTensor
    out[i] = ((pixels - mean) / std).transpose(2, 0, 1)             # Normalize, CHW
  return slot


def images_per_sec(paths: list[str], *, batch_size: int, image_size: int, num_batches: int,
                   warmup: int, workers: int, scale: tuple[float, float],
                   ratio: tuple[float, float]) -> float:
  """Throughput of the PIL loader: `workers` processes, 2 batches in flight per worker."""
  num_slots = 2 * workers                                            # DataLoader prefetch 2
  slot_shape = (num_slots, batch_size, 3, image_size, image_size)
  shm = shared_memory.SharedMemory(create=True, size=int(np.prod(slot_shape)) * 4)
  # spawn: fresh interpreters that import this module only, never TensorFlow.
  ctx = multiprocessing.get_context("spawn")
  try:
    with ctx.Pool(workers, initializer=_init,
                  initargs=(paths, shm.name, slot_shape, scale, ratio, 0)) as pool:
      slots = np.ndarray(slot_shape, np.float32, buffer=shm.buf)
      pending, submitted, start = [], 0, None
      total = warmup + num_batches
      for slot in range(num_slots):
        pending.append(pool.apply_async(_batch, (submitted, slot, batch_size, image_size)))
        submitted += 1
      for done in range(total):
        if done == warmup:
          start = time.perf_counter()
        slot = pending.pop(0).get()
        float(slots[slot, 0, 0, 0, 0])                              # the consumer reads it
        if submitted < total:
          pending.append(pool.apply_async(_batch, (submitted, slot, batch_size, image_size)))
          submitted += 1
      elapsed = time.perf_counter() - start
      del slots
  finally:
    shm.close()
    shm.unlink()
  return num_batches * batch_size / elapsed
