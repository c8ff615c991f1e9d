"""The time-series train-step benchmark: the series pretrain and forecast steps of
configs/etth1.py, each the real jitted step on one synthetic batch of look-back windows, reused.

  # Both steps at ETTh1's sizes (tst/12: width 128, depth 3, 16 heads; look-back 512, horizon
  # 96, 7 variables, batch 64 windows, mask 0.4, decoder 128 x 1 x 16):
  mae-jax-bench --target=timeseries --steps=5 --rounds=3
  # Other sizes; a flag left out keeps configs/etth1.py's value:
  mae-jax-bench --target=timeseries --stages=forecast --lookback=336 --horizon=720 \
      --num_variables=21 --batch_size=32

"pretrain" is the MAE on look-back windows (tasks/series.py pretrain_task: every variable its own
series, instance-normalised, cut into patches, masked); "forecast" is the PatchTST-style
transformer with its flatten head and MSE loss (tasks/series.py forecast_task, from random
init). Each step is built as the stage builds it (the task's make_tx, train.make_train_step,
DataParallel) and timed as step.py times the image steps: compiled once (`compile_s`),
--warmup_steps untimed, then --rounds rounds of --steps steps, the best round counting. The
windows come from the task's own batch iterator over a synthetic float32 series.

`flops_per_window` is 3 x the forward matmul FLOPs of the stage's loss on one window, counted
from its jaxpr (flops.forward_matmul_flops); `series_per_sec` = windows/s x variables. The
PyTorch side (HF PatchTST at the same sizes) is torch_patchtst.py. Unlike the image steps this
one loads TensorFlow on import (mae_jax.data's package, through data/series.py); it times
nothing of it.
"""

import importlib
import importlib.util
import sys
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import app

from mae_jax import config_lib, flops, optim, train
from mae_jax.masking import patch_grid
from mae_jax.models import decode_variant
from mae_jax.models.attention import ATTENTION_KINDS, auto_kind
from mae_jax.parallel import DataParallel
from . import peaks
from .step import device_fields, time_train_step

STAGES = ("pretrain", "forecast")
BASE_CONFIG = "etth1"
# ETTh1's variables (HUFL, HULL, MUFL, MULL, LUFL, LULL, OT): the config does not hold them,
# the file does.
NUM_VARIABLES = 7


def series_config(*, variant: str | None = None, lookback: int | None = None,
                  horizon: int | None = None, mask_ratio: float | None = None,
                  decoder: tuple[int, int, int] | None = None, dtype: str = "float32",
                  attention: str = "auto") -> ml_collections.ConfigDict:
  """configs/etth1.py with the given fields in place of its own (None keeps the config's)."""
  path = config_lib.resolve_config(BASE_CONFIG).partition(":")[0]
  spec = importlib.util.spec_from_file_location(f"mae_jax_bench_{BASE_CONFIG}", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config()
  m, d = config.model, config.data
  if attention not in ATTENTION_KINDS:
    raise app.UsageError(f"--attention must be one of {ATTENTION_KINDS}, got {attention!r}")
  m.variant = variant or m.variant
  m.mask_ratio = m.mask_ratio if mask_ratio is None else mask_ratio
  if decoder:
    m.decoder_width, m.decoder_depth, m.decoder_heads = decoder
  m.dtype, m.attention = dtype, attention
  d.lookback, d.horizon = lookback or d.lookback, horizon or d.horizon
  for stage in STAGES:
    config[stage].init_from = "random"   # nothing to load: the weights do not change the time
  return config


def num_patches(config: ml_collections.ConfigDict) -> int:
  """Patches per series of a look-back window (the last whole ones, as the forecaster cuts)."""
  patch, stride = decode_variant(config.model.variant).patch_size, config.model.patch_stride
  steps = config.data.lookback if stride else config.data.lookback // patch * patch
  return patch_grid((steps,), patch, stride)[0]


def synthetic_series(lookback: int, horizon: int, num_variables: int, num_windows: int,
                     seed: int = 0) -> Any:
  """A data/series.py Series of `num_windows` windows per split: random walks, float32
  (num_windows + lookback + horizon - 1 rows); the values do not change the time a step takes,
  but instance normalisation needs series that vary."""
  series_lib = importlib.import_module("mae_jax.data.series")
  rows = num_windows + lookback + horizon - 1
  values = np.random.default_rng(seed).standard_normal((rows, num_variables)).cumsum(0)
  dates = np.datetime64("2016-07-01T00:00:00") + np.arange(rows) * np.timedelta64(1, "h")
  return series_lib.Series(
      name="synthetic", values=values.astype(np.float32), dates=dates,
      variables=tuple(f"v{i}" for i in range(num_variables)),
      borders={s: (0, rows) for s in series_lib.SPLITS}, lookback=lookback, horizon=horizon,
      scaling="zscore", shift=np.zeros(num_variables), scale=np.ones(num_variables))


def bench_series_step(*, stages: Sequence[str] = STAGES, variant: str | None = None,
                      lookback: int | None = None, horizon: int | None = None,
                      num_variables: int = NUM_VARIABLES, batch_size: int | None = None,
                      mask_ratio: float | None = None,
                      decoder: tuple[int, int, int] | None = None, dtype: str = "float32",
                      attention: str = "auto", steps: int = 10, warmup_steps: int = 2,
                      rounds: int = 2, lockstep: bool = False, profile_dir: str | None = None
                      ) -> dict[str, Any]:
  """Times train.make_train_step of each of `stages` ("pretrain", "forecast") on
  configs/etth1.py with the given sizes (None: the config's; batch_size None: each stage's
  config.<stage>.batch_size).

  -> {"target": "timeseries", "framework": "jax", <stage>: that stage's result, ...}. With
  `lockstep`, every stage after the first waits for a stdin line before it is built (so that
  its compilation does not run during the other side's timed round), then times its rounds as
  timed_rounds does in lockstep.
  """
  unknown = set(stages) - set(STAGES)
  if unknown or not stages:
    raise app.UsageError(f"--stages must be some of {STAGES}, got {list(stages)}")
  config = series_config(variant=variant, lookback=lookback, horizon=horizon,
                         mask_ratio=mask_ratio, decoder=decoder, dtype=dtype,
                         attention=attention)
  if config.model.mask_ratio == 0:   # the masked loss needs one removed patch
    config.model.mask_ratio = 0.5 / num_patches(config)
  out = {"target": "timeseries", "framework": "jax"}
  for i, stage in enumerate(stages):
    if lockstep and i and not sys.stdin.readline():
      break
    out[stage] = _bench_stage(stage, config, num_variables=num_variables,
                              batch_size=batch_size or config[stage].batch_size, steps=steps,
                              warmup_steps=warmup_steps, rounds=rounds, lockstep=lockstep,
                              profile_dir=profile_dir)
  return out


def _bench_stage(stage: str, config: ml_collections.ConfigDict, *, num_variables: int,
                 batch_size: int, steps: int, warmup_steps: int, rounds: int, lockstep: bool,
                 profile_dir: str | None) -> dict[str, Any]:
  """One stage's step: built, timed, and its result."""
  forecast_task = importlib.import_module("mae_jax.tasks.series")
  par = DataParallel(config.parallel)
  if batch_size % par.num_devices:
    raise app.UsageError(f"--batch_size={batch_size} is not divisible by the "
                         f"{par.num_devices} devices")
  d = config.data
  source = synthetic_series(d.lookback, d.horizon, num_variables, batch_size)
  if stage == "pretrain":
    task = forecast_task.pretrain_task(config, source)
  else:
    task = forecast_task.forecast_task(config, "", source)
  schedule = optim.warmup_cosine(optim.scaled_lr(config[stage].base_lr, batch_size), 0, 1000,
                                 0.0)
  host_state, tx = train.create_state(task, lambda p: task.make_tx(schedule, p),
                                      np.zeros((1, *task.input_shape), np.float32),
                                      seed=config.seed)
  # "series" (B, L, M) and "target" (B, H, M), as the stage's loop feeds them.
  batch = next(task.data.batches(config.seed, 0, 1, 0))
  # The forward pass of the loss on one window, as the step runs it; training = 3x its matmuls
  # (each one's input and weight gradients cost what it does).
  one = {k: v[:1] for k, v in batch.items()}
  flops_per_window = 3 * flops.forward_matmul_flops(
      lambda p: task.loss_fn(p, host_state.model_state, one, jax.random.PRNGKey(0),
                             jnp.arange(1))[0], host_state.params)

  step = par.wrap(train.make_train_step(task, tx), donate_state=True)
  compile_s, step_s_rounds = time_train_step(
      step, par.put_state(host_state), par.put_batch(batch), par, steps=steps,
      warmup_steps=warmup_steps, rounds=rounds, lockstep=lockstep,
      profile_dir=f"{profile_dir}/{stage}" if profile_dir else None)
  step_s = min(step_s_rounds)
  windows_per_sec = batch_size / step_s
  device = device_fields(par)
  m = config.model
  return {"target": "timeseries", "stage": stage, "framework": "jax", "variant": m.variant,
          "lookback": d.lookback, "horizon": d.horizon, "num_variables": num_variables,
          "patches": num_patches(config), "batch_size": batch_size,
          "mask_ratio": m.mask_ratio if stage == "pretrain" else None,
          "decoder": ([m.decoder_width, m.decoder_depth, m.decoder_heads]
                      if stage == "pretrain" else None),
          "dtype": m.dtype, "steps": steps, **device,
          "attention": auto_kind(m.dtype) if m.attention == "auto" else m.attention,
          "windows_per_sec": round(windows_per_sec, 2),
          "series_per_sec": round(windows_per_sec * num_variables, 2),
          "step_ms": round(1000 * step_s, 2),
          "step_ms_rounds": [round(1000 * x, 2) for x in step_s_rounds],
          "compile_s": round(compile_s, 2),
          "flops_per_window": flops_per_window,
          "mfu": peaks.mfu(flops_per_window, windows_per_sec, device["device_kind"], m.dtype,
                           par.num_devices)}
