"""The input benchmark: our pretrain input pipeline beside the official loader's work in PIL.

  python -m mae_jax_bench --make_fixture=/tmp/photos --fixture_images=1024   # fixture.py
  python -m mae_jax_bench --target=input --data=images:/tmp/photos --image_size=224 \
      --batch_size=64 --num_batches=40 --rounds=2 --pil_workers=2

Ours is the tf.data pretrain pipeline (decode, RandomResizedCrop, flip, uint8 pixels out; the
train step normalises them on the device, mae_jax/pixels.py) with config_lib's pretrain crop and
flip. The baseline is pil_loader.py in --pil_workers processes (0: none; it reads image files,
so it needs a folder: --data=images:DIR, any folder of images, or imagefolder:DIR). The two
run one after the other, alternating for --rounds rounds, so that load from other processes
hits both alike; each reports its best round.
"""

import os
import time
from typing import Any

from absl import app

from mae_jax import allocator, config_lib
from mae_jax.data import pipeline, sources   # TensorFlow
from . import pil_loader


def bench_input(dataset: str, data_dir: str | None, *, image_size: int, batch_size: int,
                num_batches: int, warmup: int, rounds: int, pil_workers: int,
                caches: tuple[str, ...] = ("memory",)) -> dict[str, Any]:
  """Images per second of ours (per config.data.cache mode in `caches`: "memory", "stream") and
  of the PIL baseline on `dataset` (config.data.dataset). "images_per_sec" is the first mode's."""
  if not caches or set(caches) - {"memory", "stream"}:
    raise app.UsageError(f"--cache takes memory and/or stream, got {','.join(caches)}")
  cfg = config_lib.base_config("images")
  stage = cfg.pretrain
  crop_scale, crop_ratio = tuple(stage.crop_scale), tuple(stage.crop_ratio)
  source = sources.get_source(dataset, data_dir)

  if "stream" in caches and source.random_access is None:
    raise app.UsageError(f"{dataset} has no random access to stream from (image folders and "
                         f"array_record TFDS datasets have)")

  def ours(round_index: int, cache: str) -> float:
    # A fresh pipeline per round, so nothing it prefetched during the baseline's turn counts.
    batches = pipeline.train_batches(
        source, source.train_split, batch_size=batch_size, image_size=image_size,
        crop_scale=crop_scale, crop_ratio=crop_ratio, hflip=stage.hflip, seed=0,
        start_step=round_index * (num_batches + warmup), layout=cfg.data.batch_layout,
        stream=cache == "stream")
    for _ in range(warmup):
      next(batches)
    start = time.perf_counter()
    for _ in range(num_batches):
      next(batches)
    elapsed = time.perf_counter() - start
    del batches
    return num_batches * batch_size / elapsed

  paths = None
  if pil_workers > 0:
    if source.files is None:
      raise app.UsageError("the PIL baseline reads image files: use --data=images:DIR (any "
                           "folder) or imagefolder:DIR, or --pil_workers=0")
    paths = source.files(source.train_split)
  rates: dict[str, list[float]] = {cache: [] for cache in caches}
  pil_rates = []
  for r in range(rounds):
    for cache in caches:
      rates[cache].append(ours(r, cache))
      print(f"round {r}: ours ({cache}) {rates[cache][-1]:.1f} images/s", flush=True)
    if paths is not None:
      pil_rates.append(pil_loader.images_per_sec(
          paths, batch_size=batch_size, image_size=image_size, num_batches=num_batches,
          warmup=warmup, workers=pil_workers, scale=crop_scale, ratio=crop_ratio))
      print(f"round {r}: PIL ({pil_workers} workers) {pil_rates[-1]:.1f} images/s", flush=True)
  ours_rates = rates[caches[0]]
  result = {"target": "input", "data": dataset, "image_size": image_size,
            "batch_size": batch_size, "num_batches": num_batches, "rounds": rounds,
            "cpus": os.cpu_count(), "cache": caches[0],
            "images_per_sec": round(max(ours_rates), 1),
            "images_per_sec_rounds": [round(x, 1) for x in ours_rates],
            "images_per_sec_by_cache": {c: round(max(x), 1) for c, x in rates.items()},
            "images_per_sec_rounds_by_cache": {c: [round(r, 1) for r in x]
                                               for c, x in rates.items()},
            "allocator": allocator.describe()}
  if pil_rates:
    result.update(pil_workers=pil_workers, pil_images_per_sec=round(max(pil_rates), 1),
                  pil_images_per_sec_rounds=[round(x, 1) for x in pil_rates],
                  speedup_vs_pil=round(max(ours_rates) / max(pil_rates), 2))
  return result
