"""The PyTorch side of the time-series benchmark: HF transformers' PatchTSTForPretraining and
PatchTSTForPrediction at the sizes of our series steps (series.py).

Same sizes as configs/etth1.py (from the same config, so both sides agree): d_model 128, 3
layers, 16 heads, ffn_dim 512 (variant tst/12), patches of 12 with stride 12 over a 512-step
context (the last 42 whole patches, as ours), 96 steps forecast, 7 channels, batch 64 windows,
random masking of 40% of the patches, no dropout but the forecast head's (0.2, as the config's),
"std" scaling (RevIN's statistics). One AdamW step (the config's betas and weight decay) per
iteration, torch.set_num_threads(every core); prints the JSON of `mae-jax-bench
--target=timeseries`, framework "torch ...", as its last stdout line.

  # PyTorch alone, both steps:
  python -m mae_jax_bench.torch_patchtst --steps=5 --rounds=3
  # Side by side, the two frameworks taking turns round by round (ours: `python -m
  # mae_jax_bench --target=timeseries` in a subprocess):
  python -m mae_jax_bench.torch_patchtst --compare --steps=5 --rounds=3

What differs between the two models, honestly (the work per step is close, not equal):
  * Pretraining: HF keeps the masked patches in the encoder with their values zeroed
    (PatchTST's masking: 42 tokens through 3 layers) and reconstructs with one linear layer;
    our MAE drops them (1 + 25 tokens through the encoder) and reconstructs with a decoder
    (--decoder, etth1: 1 block, 128 wide, over 1 + 42 tokens). Ours with
    config.model.encoder_mask_tokens and mask_value "zero" would be HF's form; the benchmark
    times the MAE the config trains.
  * Norms: HF's default norm_type is BatchNorm (PatchTST's); ours is LayerNorm, so --norm_type
    defaults to "layernorm" here ("batchnorm" times HF's default). HF has no final encoder norm;
    ours has one.
  * Tokens: ours prepends a cls token (the MAE encoder's); HF runs use_cls_token=False with the
    flatten head (pooling_type None), PatchTST's own head.
  * RevIN: our forecaster has RevIN's learned affine per variable; HF's "std" scaler has none.
  * Masking noise: torch.rand vs jax.random; the masked fraction is the same.
  * FLOPs: FlopCounterMode does not see torch's fused CPU SDPA kernel, so on a CPU the torch
    count lacks attention (ours counts it from the jaxpr); and HF's pretraining runs all 42
    patches, ours 25.

With --compare, each side is a process that builds a stage, compiles and warms up, then takes
turns with the other for --rounds rounds (ours, theirs, ours, ...); the next stage is built only
when both are done, so one side's compilation never overlaps the other's timed round. The last
line is {"jax": {...}, "torch": {...}, "<stage>_jax_over_torch": windows/s ratio, ...}.
"""

import argparse
import os
import sys
from typing import Any

from mae_jax.models import decode_variant
from . import peaks, series
from .torch_mae import (_Side, add_common_args, run_cli,  # pylint: disable=protected-access
                        time_torch_step)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--stages", default="pretrain,forecast", help="the steps to time, in order")
  p.add_argument("--variant", default=None, help="default: configs/etth1.py's (tst/12)")
  p.add_argument("--lookback", type=int, default=None, help="default: the config's (512)")
  p.add_argument("--horizon", type=int, default=None, help="default: the config's (96)")
  p.add_argument("--num_variables", type=int, default=series.NUM_VARIABLES)
  p.add_argument("--batch_size", type=int, default=None,
                 help="windows per batch; default: the config's per stage (64)")
  p.add_argument("--mask_ratio", type=float, default=None, help="default: the config's (0.4)")
  p.add_argument("--decoder", default=None,
                 help="ours only (--compare): decoder width,depth,heads; default: the config's")
  p.add_argument("--norm_type", choices=("layernorm", "batchnorm"), default="layernorm",
                 help="HF's norm_type; layernorm as ours, batchnorm is HF's default")
  p.add_argument("--threads", type=int, default=os.cpu_count(), help="torch.set_num_threads")
  add_common_args(p, "timeseries")
  return p.parse_args(argv)


def _config(args: argparse.Namespace) -> Any:
  """configs/etth1.py with the command line's sizes: what our side builds from."""
  decoder = tuple(int(x) for x in args.decoder.split(",")) if args.decoder else None
  return series.series_config(variant=args.variant, lookback=args.lookback,
                              horizon=args.horizon, mask_ratio=args.mask_ratio,
                              decoder=decoder)


def bench_torch(args: argparse.Namespace) -> dict[str, Any]:
  """Times each of --stages with HF PatchTST; -> {"target", "framework", <stage>: result}."""
  import torch  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top

  torch.set_num_threads(args.threads)
  config = _config(args)
  out: dict[str, Any] = {"target": "timeseries",
                         "framework": f"torch {torch.__version__} + transformers "
                                      f"{transformers.__version__}"}
  for i, stage in enumerate(args.stages.split(",")):
    if stage not in series.STAGES:
      raise SystemExit(f"--stages must be some of {series.STAGES}, got {stage!r}")
    # In lockstep the next stage waits for the driver, as ours does (series.py).
    if args.lockstep and i and not sys.stdin.readline():
      break
    out[stage] = _bench_stage(stage, config, args)
  return out


def _bench_stage(stage: str, config: Any, args: argparse.Namespace) -> dict[str, Any]:
  import torch  # pylint: disable=g-import-not-at-top
  from transformers import PatchTSTConfig, PatchTSTForPrediction, PatchTSTForPretraining  # pylint: disable=g-import-not-at-top

  v, d, s = decode_variant(config.model.variant), config.data, config[stage]
  batch_size = args.batch_size or s.batch_size
  m = args.num_variables
  hf_config = PatchTSTConfig(
      num_input_channels=m, context_length=d.lookback, prediction_length=d.horizon,
      patch_length=v.patch_size, patch_stride=config.model.patch_stride or v.patch_size,
      d_model=v.width, num_hidden_layers=v.depth, num_attention_heads=v.num_heads,
      ffn_dim=int(v.mlp_ratio * v.width), norm_type=args.norm_type, norm_eps=1e-6,
      scaling="std", use_cls_token=False, pooling_type=None, share_embedding=True,
      share_projection=True, channel_attention=False, positional_encoding_type="sincos",
      attention_dropout=0.0, positional_dropout=0.0, path_dropout=0.0, ff_dropout=0.0,
      head_dropout=s.head_dropout if stage == "forecast" else 0.0,
      do_mask_input=stage == "pretrain", mask_type="random",
      random_mask_ratio=config.model.mask_ratio, channel_consistent_masking=False,
      mask_value=0, loss="mse", attn_implementation="sdpa")
  device = "cuda" if torch.cuda.is_available() else "cpu"
  torch.manual_seed(0)
  model_cls = PatchTSTForPretraining if stage == "pretrain" else PatchTSTForPrediction
  model = model_cls(hf_config).to(device).train()
  params = [p for p in model.parameters() if p.requires_grad]
  lr = s.base_lr * batch_size / 256
  opt = torch.optim.AdamW(params, lr=lr, betas=(s.b1, s.b2), weight_decay=s.weight_decay)
  clip = s.get("grad_clip_norm", 0.0)
  gen = torch.Generator().manual_seed(0)
  x = torch.randn(batch_size, d.lookback, m, generator=gen).cumsum(1).to(device)
  y = torch.randn(batch_size, d.horizon, m, generator=gen).to(device)
  amp = torch.autocast(device, dtype=torch.bfloat16, enabled=args.dtype == "bfloat16")

  def step() -> torch.Tensor:
    with amp:
      if stage == "pretrain":
        loss = model(past_values=x).loss
      else:
        loss = model(past_values=x, future_values=y).loss
    loss.backward()
    if clip:
      torch.nn.utils.clip_grad_norm_(params, clip)
    opt.step()
    opt.zero_grad(set_to_none=True)
    return loss

  first_s, flops, rounds = time_torch_step(step, device, args)
  step_s = min(rounds)
  flops_per_window = flops / batch_size
  kind = torch.cuda.get_device_name() if device == "cuda" else "cpu"
  wps = batch_size / step_s
  return {"target": "timeseries", "stage": stage,
          "framework": f"torch {torch.__version__} + transformers", "variant":
          config.model.variant, "lookback": d.lookback, "horizon": d.horizon,
          "num_variables": m, "patches": model.model.patchifier.num_patches,
          "batch_size": batch_size,
          "mask_ratio": config.model.mask_ratio if stage == "pretrain" else None,
          "decoder": None, "norm_type": args.norm_type, "dtype": args.dtype,
          "steps": args.steps, "devices": 1, "device_kind": kind,
          "threads": torch.get_num_threads(), "attention": "sdpa",
          "windows_per_sec": round(wps, 2), "series_per_sec": round(wps * m, 2),
          "step_ms": round(1000 * step_s, 2),
          "step_ms_rounds": [round(1000 * x, 2) for x in rounds],
          "compile_s": round(first_s, 2),      # eager: the first step, nothing is compiled
          "flops_per_window": flops_per_window,
          "mfu": peaks.mfu(flops_per_window, wps, kind, args.dtype),
          "peak_memory_bytes": torch.cuda.max_memory_allocated() if device == "cuda" else None}


def _flags(args: argparse.Namespace) -> list[str]:
  """The flags both sides take, as given (unset ones fall back to the config on both)."""
  out = [f"--stages={args.stages}", f"--num_variables={args.num_variables}",
         f"--steps={args.steps}", f"--warmup_steps={args.warmup_steps}",
         f"--rounds={args.rounds}", f"--dtype={args.dtype}", "--lockstep"]
  for name in ("variant", "lookback", "horizon", "batch_size", "mask_ratio", "decoder"):
    if getattr(args, name) is not None:
      out.append(f"--{name}={getattr(args, name)}")
  return out


def compare(args: argparse.Namespace) -> dict[str, Any]:
  """Ours (`python -m mae_jax_bench --target=timeseries`) and PyTorch in two processes, taking
  turns round by round within each stage."""
  jax_env = {"XLA_PYTHON_CLIENT_MEM_FRACTION":
             os.environ.get("XLA_PYTHON_CLIENT_MEM_FRACTION", "0.45")}
  ours = _Side("jax", [sys.executable, "-m", "mae_jax_bench", "--target=timeseries"]
               + _flags(args) + [f"--attention={args.attention}"], jax_env)
  theirs = _Side("torch", [sys.executable, "-m", "mae_jax_bench.torch_patchtst"]
                 + _flags(args) + [f"--norm_type={args.norm_type}",
                                   f"--threads={args.threads}"])
  stages = args.stages.split(",")
  for i, stage in enumerate(stages):
    if i:   # both finished the last stage's rounds: now both may build this one
      for side in (ours, theirs):
        side.proc.stdin.write("next\n")
        side.proc.stdin.flush()
      for side in (ours, theirs):
        side.expect("ready")
    for r in range(args.rounds):
      print(f"{stage} round {r}: jax {ours.round():.1f} ms/step, "
            f"torch {theirs.round():.1f} ms/step", flush=True)
  result = {"jax": ours.result(), "torch": theirs.result()}
  for stage in stages:
    result[f"{stage}_jax_over_torch"] = round(
        result["jax"][stage]["windows_per_sec"] / result["torch"][stage]["windows_per_sec"], 3)
  return result


def main(argv: list[str] | None = None) -> None:
  run_cli(parse_args(argv), compare, bench_torch)


if __name__ == "__main__":
  main()
