"""Benchmarks: `python -m mae_jax.bench --target=T ...`; the last stdout line is a JSON object.

  # Photo-sized JPEGs to measure on (root/train/<class>/*.jpg, ~500x375, from real photos):
  python -m mae_jax.bench --make_fixture=/tmp/photos --fixture_images=1024
  # The pretrain input pipeline alone, beside a plain PIL loader in 2 worker processes:
  python -m mae_jax.bench --target=input --data=imagefolder:/tmp/photos --image_size=224 \
      --batch_size=64 --num_batches=40

  # The real jitted train step (train.make_train_step, AdamW) on synthetic data:
  python -m mae_jax.bench --target=pretrain --variant=B/16 --image_size=224 --batch_size=8 \
      --mask_ratio=0.75 --steps=10 --dtype=float32

Targets: "input" (the tf.data pretrain pipeline: decode, RandomResizedCrop, flip, uint8 pixels
out; the train step normalises them on the device, mae_jax/pixels.py);
"pretrain" and "finetune" (one optimizer step of the stage's task: MAE with a
--decoder_width x --decoder_depth decoder, or the fine-tune classifier with layer decay).
TensorFlow and PIL are imported inside the targets that use them, so the train-step
targets never load TensorFlow. bench/torch_mae.py measures the PyTorch side (README).

The PIL baseline is what the official PyTorch release's loader does per image (ImageFolder's
PIL decode and RGB convert, torchvision RandomResizedCrop(scale 0.2-1, bicubic), flip, ToTensor,
Normalize), in --pil_workers processes that each build whole batches into shared memory, as a
torch DataLoader with that many workers does. The two run one after the other, alternating for
--rounds rounds, so that load from other processes hits both alike; each reports its best round.
"""

import json
import math
import multiprocessing
import os
import random
import sys
import time
from typing import Any, Callable

from mae_jax import allocator

if __name__ == "__main__":
  allocator.reexec()   # before JAX is imported; see allocator.py

from absl import app, flags  # noqa: E402

_TARGET = flags.DEFINE_string("target", "input", "What to measure: one of TARGETS.")
_DATA = flags.DEFINE_string("data", None, "config.data.dataset to read, e.g. imagefolder:DIR.")
_DATA_DIR = flags.DEFINE_string("data_dir", "", "TFDS data dir for TFDS datasets.")
_IMAGE_SIZE = flags.DEFINE_integer("image_size", 224, "Output resolution.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 64, "Images per batch.")
_NUM_BATCHES = flags.DEFINE_integer("num_batches", 40, "Timed batches per round.")
_WARMUP = flags.DEFINE_integer("warmup_batches", 4, "Untimed batches before each round.")
_ROUNDS = flags.DEFINE_integer("rounds", 2, "input: alternating rounds of ours and the baseline; "
                               "train steps: rounds of --steps timed steps. The best counts.")
_LOCKSTEP = flags.DEFINE_bool("lockstep", False, "Train steps: print 'ready', then before each "
                              "round wait for a line on stdin and print 'done MS' after it "
                              "(bench/torch_mae.py --compare alternates two processes so).")
_PIL_WORKERS = flags.DEFINE_integer("pil_workers", 2, "Worker processes of the PIL baseline; "
                                    "0 = no baseline.")
_VARIANT = flags.DEFINE_string("variant", "B/16", "Train steps: model variant.")
_MASK_RATIO = flags.DEFINE_float("mask_ratio", 0.75, "pretrain: fraction of patches removed.")
_STEPS = flags.DEFINE_integer("steps", 10, "Train steps: timed steps.")
_WARMUP_STEPS = flags.DEFINE_integer("warmup_steps", 2, "Train steps: untimed steps after the "
                                     "compiling one.")
_DTYPE = flags.DEFINE_enum("dtype", "float32", ["float32", "bfloat16"], "Compute dtype.")
_ATTENTION = flags.DEFINE_string("attention", "auto", "Train steps: config.model.attention "
                                 "(models/attention.py).")
_PROFILE_DIR = flags.DEFINE_string("profile_dir", None, "Train steps: after timing, trace --steps "
                                   "steps with jax.profiler into DIR and print the costliest "
                                   "ops to stderr (mae_jax/profiling.py).")
_DECODER = flags.DEFINE_list("decoder", ["512", "8", "16"], "pretrain: decoder width,depth,heads.")
_NUM_CLASSES = flags.DEFINE_integer("num_classes", 1000, "finetune: classes of the head.")
_MAKE_FIXTURE = flags.DEFINE_string("make_fixture", None, "Write photo-sized JPEGs in "
                                    "DIR/{train,val}/<class>/ and exit.")
_FIXTURE_IMAGES = flags.DEFINE_integer("fixture_images", 1024, "Training images to write.")
_FIXTURE_CLASSES = flags.DEFINE_integer("fixture_classes", 8, "Classes to write.")

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
FIXTURE_SIZE = (500, 375)     # width, height: a typical ImageNet / Oxford pets photo


# ---- fixture -----------------------------------------------------------------------------------

def make_fixture(root: str, num_images: int, num_classes: int, seed: int = 0) -> None:
  """Writes ~500x375 JPEGs (quality 90) cut from scikit-learn's two sample photos.

  Random crops, scales, flips, orientations and colour shifts of real photos: JPEG statistics
  (and so decoding cost) of natural images, which noise or flat colours would not have.
  """
  import numpy as np  # pylint: disable=g-import-not-at-top
  from PIL import Image  # pylint: disable=g-import-not-at-top
  from sklearn.datasets import load_sample_images  # pylint: disable=g-import-not-at-top

  photos = [Image.fromarray(p) for p in load_sample_images().images]   # 427x640 RGB
  rng = np.random.default_rng(seed)
  for split, count in (("train", num_images), ("val", max(num_images // 8, num_classes))):
    for i in range(count):
      photo = photos[i % len(photos)]
      w, h = FIXTURE_SIZE if rng.random() < 0.75 else FIXTURE_SIZE[::-1]
      scale = rng.uniform(0.5, 1.0)
      cw, ch = int(photo.width * scale), int(photo.width * scale * h / w)
      ch = min(ch, photo.height)
      left, top = rng.integers(0, photo.width - cw + 1), rng.integers(0, photo.height - ch + 1)
      image = photo.crop((left, top, left + cw, top + ch)).resize((w, h), Image.BICUBIC)
      if rng.random() < 0.5:
        image = image.transpose(Image.FLIP_LEFT_RIGHT)
      pixels = np.asarray(image, np.float32) * rng.uniform(0.8, 1.2, 3)
      image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
      folder = os.path.join(root, split, f"class_{i % num_classes:03d}")
      os.makedirs(folder, exist_ok=True)
      image.save(os.path.join(folder, f"{i:06d}.jpg"), quality=90)


# ---- the PIL baseline --------------------------------------------------------------------------

_worker: dict[str, Any] = {}


def _pil_init(paths: list[str], shm_name: str, slot_shape: tuple[int, ...], scale: float,
              ratio: tuple[float, float], seed: int) -> None:
  import numpy as np  # pylint: disable=g-import-not-at-top
  from multiprocessing import shared_memory  # pylint: disable=g-import-not-at-top
  shm = shared_memory.SharedMemory(name=shm_name)
  _worker.update(paths=paths, shm=shm, scale=scale, ratio=ratio, seed=seed,
                 slots=np.ndarray(slot_shape, np.float32, buffer=shm.buf))


def _pil_rrc_params(width: int, height: int, scale: tuple[float, float],
                    ratio: tuple[float, float], rnd: random.Random) -> tuple[int, int, int, int]:
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


def _pil_batch(batch_index: int, slot: int, batch_size: int, size: int) -> int:
  """Builds batch `batch_index` into shared-memory slot `slot` (N, 3, size, size), as torch."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  from PIL import Image  # pylint: disable=g-import-not-at-top
  paths, out = _worker["paths"], _worker["slots"][slot]
  rnd = random.Random(_worker["seed"] * 1_000_003 + batch_index)
  mean = np.asarray(IMAGENET_MEAN, np.float32)
  std = np.asarray(IMAGENET_STD, np.float32)
  for i in range(batch_size):
    with open(paths[rnd.randrange(len(paths))], "rb") as f:
      image = Image.open(f).convert("RGB")
    top, left, h, w = _pil_rrc_params(image.width, image.height, _worker["scale"],
                                      _worker["ratio"], rnd)
    image = image.crop((left, top, left + w, top + h)).resize((size, size), Image.BICUBIC)
    if rnd.random() < 0.5:
      image = image.transpose(Image.FLIP_LEFT_RIGHT)
    pixels = np.asarray(image, np.float32) / 255.0                 # ToTensor
    out[i] = ((pixels - mean) / std).transpose(2, 0, 1)             # Normalize, CHW
  return slot


def pil_images_per_sec(paths: list[str], *, batch_size: int, image_size: int,
                       num_batches: int, warmup: int, workers: int,
                       scale: tuple[float, float], ratio: tuple[float, float]) -> float:
  """Throughput of the PIL loader: `workers` processes, 2 batches in flight per worker."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  from multiprocessing import shared_memory  # pylint: disable=g-import-not-at-top
  num_slots = 2 * workers                                            # DataLoader prefetch 2
  slot_shape = (num_slots, batch_size, 3, image_size, image_size)
  shm = shared_memory.SharedMemory(create=True, size=int(np.prod(slot_shape)) * 4)
  # spawn: fresh interpreters that import this module only, never TensorFlow.
  ctx = multiprocessing.get_context("spawn")
  try:
    with ctx.Pool(workers, initializer=_pil_init,
                  initargs=(paths, shm.name, slot_shape, scale, ratio, 0)) as pool:
      slots = np.ndarray(slot_shape, np.float32, buffer=shm.buf)
      pending, submitted, start = [], 0, None
      total = warmup + num_batches
      for slot in range(num_slots):
        pending.append(pool.apply_async(_pil_batch, (submitted, slot, batch_size, image_size)))
        submitted += 1
      for done in range(total):
        if done == warmup:
          start = time.perf_counter()
        slot = pending.pop(0).get()
        float(slots[slot, 0, 0, 0, 0])                              # the consumer reads it
        if submitted < total:
          pending.append(pool.apply_async(_pil_batch, (submitted, slot, batch_size,
                                                       image_size)))
          submitted += 1
      elapsed = time.perf_counter() - start
      del slots
  finally:
    shm.close()
    shm.unlink()
  return num_batches * batch_size / elapsed


# ---- targets -----------------------------------------------------------------------------------

def _bench_input() -> dict[str, Any]:
  """The pretrain input pipeline (config_lib's pretrain crop/flip) vs the PIL baseline."""
  from mae_jax import config_lib  # pylint: disable=g-import-not-at-top
  from mae_jax import data  # pylint: disable=g-import-not-at-top  (TensorFlow)
  from mae_jax.data import imagefolder  # pylint: disable=g-import-not-at-top

  if not _DATA.value:
    raise app.UsageError("--data is required for --target=input (e.g. imagefolder:DIR)")
  cfg = config_lib.base_config()
  stage = cfg.pretrain
  source = data.get_source(_DATA.value, _DATA_DIR.value or None)
  batch, size, n, warm = _BATCH_SIZE.value, _IMAGE_SIZE.value, _NUM_BATCHES.value, _WARMUP.value

  def ours(round_index: int) -> float:
    # A fresh pipeline per round, so nothing it prefetched during the baseline's turn counts.
    batches = data.train_batches(
        source, source.train_split, batch_size=batch, image_size=size,
        crop_scale=tuple(stage.crop_scale), crop_ratio=tuple(stage.crop_ratio),
        hflip=stage.hflip, seed=0, start_step=round_index * (n + warm),
        layout=cfg.data.batch_layout)
    for _ in range(warm):
      next(batches)
    start = time.perf_counter()
    for _ in range(n):
      next(batches)
    elapsed = time.perf_counter() - start
    del batches
    return n * batch / elapsed

  paths = None
  if _PIL_WORKERS.value > 0:
    if not _DATA.value.startswith(imagefolder.PREFIX):
      raise app.UsageError("the PIL baseline reads image files: use --data=imagefolder:DIR "
                           "or --pil_workers=0")
    _, splits = imagefolder.scan(_DATA.value[len(imagefolder.PREFIX):])
    paths = splits[imagefolder.TRAIN_SPLIT][0]
  ours_rates, pil_rates = [], []
  for r in range(_ROUNDS.value):
    ours_rates.append(ours(r))
    print(f"round {r}: ours {ours_rates[-1]:.1f} images/s", flush=True)
    if paths is not None:
      pil_rates.append(pil_images_per_sec(
          paths, batch_size=batch, image_size=size, num_batches=n, warmup=warm,
          workers=_PIL_WORKERS.value, scale=tuple(stage.crop_scale),
          ratio=tuple(stage.crop_ratio)))
      print(f"round {r}: PIL ({_PIL_WORKERS.value} workers) {pil_rates[-1]:.1f} images/s",
            flush=True)
  result = {"target": "input", "data": _DATA.value, "image_size": size, "batch_size": batch,
            "num_batches": n, "rounds": _ROUNDS.value, "cpus": os.cpu_count(),
            "images_per_sec": round(max(ours_rates), 1),
            "images_per_sec_rounds": [round(x, 1) for x in ours_rates]}
  if pil_rates:
    result.update(pil_workers=_PIL_WORKERS.value, pil_images_per_sec=round(max(pil_rates), 1),
                  pil_images_per_sec_rounds=[round(x, 1) for x in pil_rates],
                  speedup_vs_pil=round(max(ours_rates) / max(pil_rates), 2))
  return result


def timed_rounds(run_round: Callable[[], float], rounds: int, lockstep: bool) -> list[float]:
  """Seconds per step of each round (run_round times one round of steps).

  Machines shared with other tenants vary by 10-30% from second to second, so results take
  the best round; in lockstep two benchmarks take turns round by round, and slow spells hit
  both alike.
  """
  if lockstep:
    print("ready", flush=True)
  out = []
  for _ in range(rounds):
    if lockstep and not sys.stdin.readline():
      break
    out.append(run_round())
    if lockstep:
      print(f"done {1000 * out[-1]:.1f}", flush=True)
  return out


# Dense peak FLOP/s per device by jax device_kind prefix (vendor datasheets); float32 on
# GPUs means TF32 tensor cores, which XLA uses for float32 matmuls by default.
PEAK_FLOPS: dict[str, dict[str, float]] = {
    "NVIDIA H100": {"bfloat16": 989e12, "float32": 495e12},
    "NVIDIA H200": {"bfloat16": 989e12, "float32": 495e12},
    "NVIDIA A100": {"bfloat16": 312e12, "float32": 156e12},
    "TPU v4": {"bfloat16": 275e12},
    "TPU v5 lite": {"bfloat16": 197e12},
    "TPU v5p": {"bfloat16": 459e12},
    "TPU v6 lite": {"bfloat16": 918e12},
}


def peak_flops(device_kind: str, dtype: str) -> float | None:
  """The device's peak for `dtype`, or None where unknown (CPUs, unlisted accelerators)."""
  for prefix, peaks in PEAK_FLOPS.items():
    if device_kind.startswith(prefix):
      return peaks.get(dtype)
  return None


def _bench_train_step(target: str) -> dict[str, Any]:
  """Times train.make_train_step of the `target` stage on one synthetic batch, reused."""
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  # pylint: disable-next=g-import-not-at-top
  from mae_jax import config_lib, flops, optim, pixels, tasks, train
  from mae_jax.models import decode_variant  # pylint: disable=g-import-not-at-top
  # pylint: disable-next=g-import-not-at-top
  from mae_jax.models.attention import ATTENTION_KINDS, auto_kind
  from mae_jax.parallel import DataParallel  # pylint: disable=g-import-not-at-top

  config = config_lib.base_config()
  config.model.variant, config.model.dtype = _VARIANT.value, _DTYPE.value
  if _ATTENTION.value not in ATTENTION_KINDS:
    raise app.UsageError(f"--attention must be one of {ATTENTION_KINDS}, got {_ATTENTION.value!r}")
  config.model.attention = _ATTENTION.value
  num_patches = (_IMAGE_SIZE.value // decode_variant(_VARIANT.value).patch_size) ** 2
  # The MAE loss needs a removed patch: mask 0 is measured with one patch removed.
  config.model.mask_ratio = _MASK_RATIO.value or 0.5 / num_patches
  width, depth, heads = (int(x) for x in _DECODER.value)
  config.model.decoder_width, config.model.decoder_depth, config.model.decoder_heads = \
      width, depth, heads
  config.data.image_size = size = _IMAGE_SIZE.value
  config.visualize.every_steps = 0
  config.finetune.init_from = "random"
  batch = _BATCH_SIZE.value
  if target == "pretrain":
    task = tasks.pretrain_task(config)
  else:
    task = tasks.classifier_task(config, "finetune", _NUM_CLASSES.value, workdir="")
  cfg = config[target]
  par = DataParallel(config.parallel)
  par.check_batch(batch, "batch_size")
  schedule = optim.warmup_cosine(optim.scaled_lr(cfg.base_lr, batch), 0, 1000, 0.0)
  host_state, tx = train.create_state(task, lambda p: task.make_tx(schedule, p),
                                      np.zeros((1, size, size, 3), np.float32), seed=0)
  state = par.put_state(host_state)
  rng = np.random.default_rng(0)
  # uint8 pixels, as the input pipeline delivers them: the step normalises them itself.
  image_shape = pixels.image_shape(size, config.data.batch_layout)
  data = par.put_batch({"image": rng.integers(0, 256, (batch, *image_shape), np.uint8),
                        "label": rng.integers(0, _NUM_CLASSES.value, batch).astype(np.int32)})
  step = par.wrap(train.make_train_step(task, tx), donate_state=True)

  t0 = time.perf_counter()
  compiled = step.lower(state, data).compile()     # the calls below reuse this executable
  compile_s = time.perf_counter() - t0
  if target == "pretrain":
    flops_per_image = flops.pretrain_flops_per_image(_VARIANT.value, size, config.model.mask_ratio,
                                                     (width, depth, heads))
  else:
    flops_per_image = flops.classifier_flops_per_image(_VARIANT.value, size, _NUM_CLASSES.value)
  for _ in range(max(_WARMUP_STEPS.value, 1)):
    state, metrics = compiled(state, data)
  jax.block_until_ready(metrics)

  def run_round() -> float:
    nonlocal state, metrics
    t0 = time.perf_counter()
    for _ in range(_STEPS.value):
      state, metrics = compiled(state, data)
    jax.block_until_ready((state, metrics))
    return (time.perf_counter() - t0) / _STEPS.value

  rounds = timed_rounds(run_round, _ROUNDS.value, _LOCKSTEP.value)
  if not rounds:
    raise RuntimeError("no round was timed (in --lockstep, stdin closed before the first)")
  step_s = min(rounds)
  if _PROFILE_DIR.value:
    from mae_jax import profiling  # pylint: disable=g-import-not-at-top
    trace_file = profiling.trace(run_round, _PROFILE_DIR.value)
    print(f"trace: {trace_file}\n" + profiling.format_table(
        profiling.op_table(trace_file, _STEPS.value)), file=sys.stderr, flush=True)
  if not np.isfinite(float(jax.device_get(par.unreplicate(metrics)["loss"]))):
    raise FloatingPointError("non-finite loss in the benchmark")

  device = jax.devices()[0]
  images_per_sec = batch / step_s
  peak = peak_flops(device.device_kind, _DTYPE.value)
  stats = device.memory_stats() if hasattr(device, "memory_stats") else None
  peak_memory = (stats or {}).get("peak_bytes_in_use")
  return {"target": target, "framework": "jax", "variant": _VARIANT.value, "image_size": size,
          "batch_size": batch,
          "mask_ratio": config.model.mask_ratio if target == "pretrain" else None,
          "decoder": [width, depth, heads] if target == "pretrain" else None,
          "dtype": _DTYPE.value, "steps": _STEPS.value, "devices": par.num_devices,
          "device_kind": device.device_kind,
          "attention": auto_kind(_DTYPE.value) if _ATTENTION.value == "auto" else _ATTENTION.value,
          "images_per_sec": round(images_per_sec, 2),
          "step_ms": round(1000 * step_s, 2),
          "step_ms_rounds": [round(1000 * x, 2) for x in rounds],
          "compile_s": round(compile_s, 2),
          "flops_per_image": flops_per_image,       # model FLOPs, as torch counts (flops.py)
          "mfu": round(flops_per_image * images_per_sec / (peak * par.num_devices), 4)
                 if peak else None,
          "peak_memory_bytes": peak_memory,
          "allocator": allocator.describe()}


TARGETS: dict[str, Callable[[], dict[str, Any]]] = {
    "input": _bench_input,
    "pretrain": lambda: _bench_train_step("pretrain"),
    "finetune": lambda: _bench_train_step("finetune"),
}


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if _MAKE_FIXTURE.value:
    make_fixture(_MAKE_FIXTURE.value, _FIXTURE_IMAGES.value, _FIXTURE_CLASSES.value)
    print(json.dumps({"fixture": _MAKE_FIXTURE.value, "images": _FIXTURE_IMAGES.value}))
    return
  if _TARGET.value not in TARGETS:
    raise app.UsageError(f"--target must be one of {sorted(TARGETS)}, got {_TARGET.value!r}")
  result = TARGETS[_TARGET.value]()
  sys.stdout.flush()
  print(json.dumps(result), flush=True)


if __name__ == "__main__":
  app.run(main)
