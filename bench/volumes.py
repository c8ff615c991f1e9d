"""The 3-D segmentation train-step benchmark: UNETR (models/unetr.py) with MONAI's Dice + CE loss
(losses.dice_ce_loss) and AdamW, the real jitted step on one synthetic batch of volumes, reused.

  # The CPU-sized default: Ti/16 (width 192, 12 blocks, 3 heads), 64^3 crops of one channel,
  # feature size 16, 14 classes (BTCV's), batch 1:
  mae-jax-bench --target=segment3d --steps=5 --rounds=3
  # MONAI's UNETR-B on BTCV's 96^3 crops:
  mae-jax-bench --target=segment3d --variant=B/16 --roi=96 --batch_size=2 --feature_size=16

The step is train.make_train_step over a Task built here (the model, its loss, AdamW), not the
segment3d stage's own task, so this file depends on the model and the loss alone; it is timed
as step.py times the image steps: compiled once (`compile_s`), --warmup_steps untimed, then
--rounds rounds of --steps steps, the best round counting. Inputs are normal noise (volumes
arrive normalised) and uniform labels. AdamW as MONAI's UNETR tutorial trains (lr 1e-4, weight
decay 1e-5, betas 0.9/0.999): LR, WEIGHT_DECAY and BETAS, which the PyTorch side
(torch_unetr.py) reads too.

Feature blocks: spread over the encoder ending at its last block (depth 12: 3, 6, 9, 12, the
paper's); which blocks are tapped does not change the work. `flops_per_volume` is 3 x the
forward FLOPs (matmuls and convolution taps) of the loss on one volume, counted from its jaxpr
(flops.forward_matmul_flops).
"""

from typing import Any

import jax.numpy as jnp
import numpy as np
from absl import app

from mae_jax import flops, losses, optim, train
from mae_jax.models import UNETR, decode_variant, from_variant
from mae_jax.models.attention import ATTENTION_KINDS, auto_kind
from mae_jax.models.unetr import num_levels, resolve_conv
from mae_jax.parallel import DataParallel
from mae_jax.tasks.base import Task
from . import peaks
from .step import device_fields, time_train_step

VARIANT = "Ti/16"
ROI = 64
BATCH_SIZE = 1
FEATURE_SIZE = 16
NUM_CLASSES = 14       # BTCV: background and 13 organs
IN_CHANNELS = 1
LR, WEIGHT_DECAY, BETAS = 1e-4, 1e-5, (0.9, 0.999)


def feature_blocks(variant: str) -> tuple[int, ...]:
  """log2(patch) taps spread evenly over the encoder, the last its last block (12 blocks,
  patch 16: 3, 6, 9, 12)."""
  v = decode_variant(variant)
  levels = num_levels(v.patch_size)
  return tuple(max(1, v.depth * k // levels) for k in range(1, levels + 1))


def unetr_task(variant: str, *, num_classes: int, feature_size: int, roi: int, in_channels: int,
               dtype: str, attention: str, conv: str = "auto") -> Task:
  """UNETR + Dice/CE + AdamW as a Task without data (what train.make_train_step needs).

  batch: "volume" (N, roi, roi, roi, in_channels) float32, "label" (N, roi, roi, roi) int32.
  """
  model = from_variant(UNETR, variant, num_classes=num_classes, feature_size=feature_size,
                       feature_blocks=feature_blocks(variant), dtype=jnp.dtype(dtype),
                       attention=attention, conv=conv)

  def loss_fn(params, model_state, batch, rng, example_ids):
    del rng, example_ids   # no dropout, no drop path: MONAI's UNETR has none by default
    logits = model.apply({"params": params}, batch["volume"], train=True)
    loss = losses.dice_ce_loss(logits, batch["label"], num_classes)
    return loss, (model_state, {"loss": loss})

  def make_tx(schedule, params):
    return optim.adamw(schedule, params, b1=BETAS[0], b2=BETAS[1], weight_decay=WEIGHT_DECAY)

  return Task("segment3d", model, loss_fn, make_tx, input_shape=(roi,) * 3 + (in_channels,))


def bench_volume_step(*, variant: str | None = None, roi: int | None = None,
                      batch_size: int | None = None, num_classes: int | None = None,
                      feature_size: int | None = None, in_channels: int = IN_CHANNELS,
                      dtype: str = "float32", attention: str = "auto", conv: str = "auto",
                      steps: int = 10,
                      warmup_steps: int = 2, rounds: int = 2, lockstep: bool = False,
                      profile_dir: str | None = None) -> dict[str, Any]:
  """Times train.make_train_step of UNETR on roi^3 volumes (None: this file's defaults).

  -> {"target": "segment3d", "framework": "jax", ...}. With `lockstep`, rounds take turns with
  another process as timed_rounds does.
  """
  variant, roi = variant or VARIANT, roi or ROI
  batch_size, num_classes = batch_size or BATCH_SIZE, num_classes or NUM_CLASSES
  feature_size = feature_size or FEATURE_SIZE
  if attention not in ATTENTION_KINDS:
    raise app.UsageError(f"--attention must be one of {ATTENTION_KINDS}, got {attention!r}")
  patch = decode_variant(variant).patch_size
  if roi % patch:
    raise app.UsageError(f"--roi={roi} is not a multiple of the patch size {patch}")
  task = unetr_task(variant, num_classes=num_classes, feature_size=feature_size, roi=roi,
                    in_channels=in_channels, dtype=dtype, attention=attention, conv=conv)
  par = DataParallel()
  if batch_size % par.num_devices:
    raise app.UsageError(f"--batch_size={batch_size} is not divisible by the "
                         f"{par.num_devices} devices")
  host_state, tx = train.create_state(task, lambda p: task.make_tx(lambda _: LR, p),
                                      np.zeros((1, *task.input_shape), np.float32), seed=0)
  rng = np.random.default_rng(0)
  batch = {"volume": rng.standard_normal((batch_size, *task.input_shape), np.float32),
           "label": rng.integers(0, num_classes, (batch_size,) + (roi,) * 3).astype(np.int32)}
  one = {k: v[:1] for k, v in batch.items()}
  flops_per_volume = 3 * flops.forward_matmul_flops(
      lambda p: task.loss_fn(p, {}, one, None, None)[0], host_state.params)

  step = par.wrap(train.make_train_step(task, tx), donate_state=True)
  compile_s, step_s_rounds = time_train_step(
      step, par.put_state(host_state), par.put_batch(batch), par, steps=steps,
      warmup_steps=warmup_steps, rounds=rounds, lockstep=lockstep, profile_dir=profile_dir)
  step_s = min(step_s_rounds)
  volumes_per_sec = batch_size / step_s
  device = device_fields(par)
  return {"target": "segment3d", "framework": "jax", "variant": variant, "roi": roi,
          "in_channels": in_channels, "num_classes": num_classes,
          "feature_size": feature_size, "feature_blocks": list(task.model.feature_blocks),
          "batch_size": batch_size, "dtype": dtype, "steps": steps, **device,
          "attention": auto_kind(dtype) if attention == "auto" else attention,
          "conv": resolve_conv(conv),
          "volumes_per_sec": round(volumes_per_sec, 3),
          "step_ms": round(1000 * step_s, 2),
          "step_ms_rounds": [round(1000 * x, 2) for x in step_s_rounds],
          "compile_s": round(compile_s, 2),
          "flops_per_volume": flops_per_volume,
          "mfu": peaks.mfu(flops_per_volume, volumes_per_sec, device["device_kind"], dtype,
                           par.num_devices)}
