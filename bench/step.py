"""The train-step benchmark: the real jitted step of a stage on one synthetic batch, reused.

  # MAE pretraining (train.make_train_step, AdamW), a 512 x 8 x 16 decoder:
  python -m mae_jax_bench --target=pretrain --variant=B/16 --image_size=224 --batch_size=8 \
      --mask_ratio=0.75 --steps=10 --dtype=float32
  # The fine-tune classifier with layer decay; --profile_dir adds a table of the costliest ops:
  python -m mae_jax_bench --target=finetune --variant=B/16 --num_classes=1000 --steps=2 \
      --profile_dir=/tmp/mae_profile

The step compiles once (`compile_s`), runs --warmup_steps untimed, then --rounds rounds of
--steps steps; the best round counts. `flops_per_image` is the model FLOPs as torch counts them
(mae_jax/flops.py), so `mfu` compares with the PyTorch side (torch_mae.py). Nothing here imports
TensorFlow.
"""

import sys
import time
from typing import Any, Callable

import jax
import numpy as np
from absl import app

from mae_jax import allocator, config_lib, flops, optim, pixels, train
from mae_jax.models import decode_variant
from mae_jax.models.attention import ATTENTION_KINDS, auto_kind
from mae_jax.parallel import DataParallel
from . import peaks, profiling


def timed_rounds(run_round: Callable[[], float], rounds: int, lockstep: bool) -> list[float]:
  """Seconds per step of each round (run_round times one round of steps).

  Machines shared with other tenants vary by 10-30% from second to second, so results take
  the best round; in lockstep two benchmarks take turns round by round, and slow spells hit
  both alike: it prints "ready", then before each round waits for a line on stdin and after
  it prints "done MS" (torch_mae.py --compare drives two processes so). A lockstep run whose
  stdin ends early returns the rounds it timed.
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
  if not out:
    raise RuntimeError("no round was timed (in --lockstep, stdin closed before the first)")
  return out


def bench_train_step(target: str, *, variant: str, image_size: int, batch_size: int,
                     mask_ratio: float, decoder: tuple[int, int, int], num_classes: int,
                     dtype: str, attention: str, steps: int, warmup_steps: int, rounds: int,
                     lockstep: bool = False, profile_dir: str | None = None) -> dict[str, Any]:
  """Times train.make_train_step of the `target` stage ("pretrain", "finetune" or "segment":
  UPerNet on image_size crops, num_classes classes).

  decoder: (width, depth, heads) of the MAE decoder (pretrain). mask_ratio 0 is measured with
  one patch removed, as the MAE loss needs one. With `profile_dir`, --steps more steps are
  traced after timing and the costliest ops printed to stderr (profiling.py).
  """
  config = config_lib.base_config("segmentation" if target == "segment" else "images")
  config.model.variant, config.model.dtype = variant, dtype
  if attention not in ATTENTION_KINDS:
    raise app.UsageError(f"--attention must be one of {ATTENTION_KINDS}, got {attention!r}")
  config.model.attention = attention
  num_patches = (image_size // decode_variant(variant).patch_size) ** 2
  config.model.mask_ratio = mask_ratio or 0.5 / num_patches
  width, depth, heads = decoder
  config.model.decoder_width, config.model.decoder_depth, config.model.decoder_heads = \
      width, depth, heads
  config.data.image_size = image_size
  config.visualize.every_steps = 0
  config.data.num_classes = num_classes
  from mae_jax.tasks import images, segmentation  # pylint: disable=g-import-not-at-top
  if target == "pretrain":
    task = images.pretrain_task(config)
  elif target == "segment":
    config.segment.crop_size = image_size
    config.segment.init_from = "random"
    depth = decode_variant(variant).depth
    # Four taps spread over the encoder, ending at its last block (B: 3, 6, 9, 12).
    config.segment.feature_blocks = tuple(max(1, depth * k // 4) for k in range(1, 5))
    task = segmentation.segment_task(config, "")
  else:
    config.finetune.init_from = "random"
    task = images.classifier_task(config, "finetune", num_classes, workdir="")
  par = DataParallel(config.parallel)
  if batch_size % par.num_devices:
    raise app.UsageError(f"--batch_size={batch_size} is not divisible by the "
                         f"{par.num_devices} devices")
  schedule = optim.warmup_cosine(optim.scaled_lr(config[target].base_lr, batch_size), 0, 1000,
                                 0.0)
  host_state, tx = train.create_state(task, lambda p: task.make_tx(schedule, p),
                                      np.zeros((1, image_size, image_size, 3), np.float32), seed=0)
  state = par.put_state(host_state)
  rng = np.random.default_rng(0)
  # uint8 pixels, as the input pipeline delivers them: the step normalises them itself.
  if target == "segment":   # HWC images and a label map per image (seg_pipeline.py)
    data = par.put_batch({
        "image": rng.integers(0, 256, (batch_size, image_size, image_size, 3), np.uint8),
        "label": rng.integers(0, num_classes, (batch_size, image_size, image_size)
                              ).astype(np.uint8)})
  else:
    image_shape = pixels.image_shape(image_size, config.data.batch_layout)
    data = par.put_batch({"image": rng.integers(0, 256, (batch_size, *image_shape), np.uint8),
                          "label": rng.integers(0, num_classes, batch_size).astype(np.int32)})
  step = par.wrap(train.make_train_step(task, tx), donate_state=True)
  compile_s, step_s_rounds = time_train_step(
      step, state, data, par, steps=steps, warmup_steps=warmup_steps, rounds=rounds,
      lockstep=lockstep, profile_dir=profile_dir)
  step_s = min(step_s_rounds)
  if target == "pretrain":
    flops_per_image = flops.pretrain_flops_per_image(variant, image_size, config.model.mask_ratio,
                                                     decoder)
  elif target == "segment":
    # Counted from the model's jaxpr (flops.py), forward + backward = 3x the forward.
    one = np.zeros((1, image_size, image_size, 3), np.float32)
    flops_per_image = 3 * flops.forward_matmul_flops(
        lambda v, x: task.model.apply(v, x, train=False),
        {"params": host_state.params, **host_state.model_state}, one)
  else:
    flops_per_image = flops.classifier_flops_per_image(variant, image_size, num_classes)

  device = device_fields(par)
  images_per_sec = batch_size / step_s
  return {"target": target, "framework": "jax", "variant": variant, "image_size": image_size,
          "batch_size": batch_size,
          "mask_ratio": config.model.mask_ratio if target == "pretrain" else None,
          "decoder": [width, depth, heads] if target == "pretrain" else None,
          "dtype": dtype, "steps": steps, "devices": par.num_devices,
          "device_kind": device["device_kind"],
          "attention": auto_kind(dtype) if attention == "auto" else attention,
          "images_per_sec": round(images_per_sec, 2),
          "step_ms": round(1000 * step_s, 2),
          "step_ms_rounds": [round(1000 * x, 2) for x in step_s_rounds],
          "compile_s": round(compile_s, 2),
          "flops_per_image": flops_per_image,       # model FLOPs, as torch counts (flops.py)
          "mfu": (peaks.mfu(flops_per_image, images_per_sec, device["device_kind"], dtype,
                            par.num_devices) if flops_per_image else None),
          "peak_memory_bytes": device["peak_memory_bytes"],
          "allocator": device["allocator"]}


def time_train_step(step: Callable[..., Any], state: Any, data: dict[str, jax.Array],
                    par: DataParallel, *, steps: int, warmup_steps: int, rounds: int,
                    lockstep: bool = False, profile_dir: str | None = None
                    ) -> tuple[float, list[float]]:
  """Compiles the wrapped train step `step` for (state, data), runs max(warmup_steps, 1)
  untimed steps, then `rounds` rounds of `steps` steps (timed_rounds).

  -> (compile seconds, seconds per step of each round). `state` is donated: the caller's copy
  is gone afterwards. With `profile_dir`, one more round is traced and the costliest ops
  printed to stderr (profiling.py). A non-finite loss after the last step raises.
  """
  t0 = time.perf_counter()
  compiled = step.lower(state, data).compile()     # the calls below reuse this executable
  compile_s = time.perf_counter() - t0
  for _ in range(max(warmup_steps, 1)):
    state, metrics = compiled(state, data)
  jax.block_until_ready(metrics)

  def run_round() -> float:
    nonlocal state, metrics
    t0 = time.perf_counter()
    for _ in range(steps):
      state, metrics = compiled(state, data)
    jax.block_until_ready((state, metrics))
    return (time.perf_counter() - t0) / steps

  step_s_rounds = timed_rounds(run_round, rounds, lockstep)
  if profile_dir:
    trace_file = profiling.trace(run_round, profile_dir)
    print(f"trace: {trace_file}\n" + profiling.format_table(
        profiling.op_table(trace_file, steps)), file=sys.stderr, flush=True)
  if not np.isfinite(float(jax.device_get(par.unreplicate(metrics)["loss"]))):
    raise FloatingPointError("non-finite loss in the benchmark")
  return compile_s, step_s_rounds


def device_fields(par: DataParallel) -> dict[str, Any]:
  """What a result says about where it ran: device kind, peak memory (None where the device
  does not tell, as CPUs), the host allocator (mae_jax/allocator.py)."""
  device = jax.devices()[0]
  stats = device.memory_stats() if hasattr(device, "memory_stats") else None
  return {"devices": par.num_devices, "device_kind": device.device_kind,
          "peak_memory_bytes": (stats or {}).get("peak_bytes_in_use"),
          "allocator": allocator.describe()}
