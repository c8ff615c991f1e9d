"""The PyTorch side of the train-step benchmark: HF transformers' ViTMAEForPreTraining.

Same model (encoder variant, decoder width x depth x heads, MLP ratio 4, norm_pix_loss), same
synthetic batch shape, one AdamW step (betas 0.9/0.95, weight decay 0.05, as the official
pretraining) per iteration; prints the same JSON keys as `python -m mae_jax_bench` as its
last stdout line. It needs torch and transformers, which mae_jax itself does not.

  # PyTorch alone:
  python -m mae_jax_bench.torch_mae --variant=B/16 --image_size=224 --batch_size=8 --steps=5
  # Side by side, one after the other in one command (ours first, in a subprocess):
  python -m mae_jax_bench.torch_mae --compare --variant=Ti/8 --image_size=64 --batch_size=64 \
      --steps=5

With --compare both sides start as separate processes, compile and warm up, then take turns
for --rounds rounds of --steps steps (ours, theirs, ours, ...), so that the slow spells of a
shared machine hit both alike; each reports its best round. The last line is {"jax": {...},
"torch": {...}, "jax_over_torch": images/s ratio}. Masking noise differs (torch.rand vs
jax.random), the work per step does not.
"""

import argparse
import json
import os
import subprocess
import sys
import time
from typing import Any, Callable

from mae_jax.models import decode_variant
from . import peaks
from .step import timed_rounds


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--variant", default="B/16")
  p.add_argument("--image_size", type=int, default=224)
  p.add_argument("--batch_size", type=int, default=8)
  p.add_argument("--mask_ratio", type=float, default=0.75)
  p.add_argument("--decoder", default="512,8,16", help="decoder width,depth,heads")
  p.add_argument("--lr", type=float, default=1.5e-4 * 8 / 256)
  add_common_args(p, "pretrain")
  return p.parse_args(argv)


def add_common_args(p: argparse.ArgumentParser, target: str) -> None:
  """The timing, dtype and --compare flags every PyTorch bench takes; `target`: the
  `mae-jax-bench --target` that --compare runs as our side."""
  p.add_argument("--steps", type=int, default=10)
  p.add_argument("--warmup_steps", type=int, default=2)
  p.add_argument("--rounds", type=int, default=3, help="rounds of --steps timed steps; best counts")
  p.add_argument("--lockstep", action="store_true",
                 help="wait for a stdin line before each round (what --compare drives)")
  p.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32",
                 help="bfloat16 = torch.autocast (AMP); parameters stay float32")
  p.add_argument("--attention", default="auto", help="ours: config.model.attention")
  p.add_argument("--compare", action="store_true",
                 help=f"ours (`python -m mae_jax_bench --target={target}`) and PyTorch, "
                      "taking turns")


def _variant(name: str) -> tuple[int, int, int, int]:
  """"B/16" -> (width, depth, heads, patch) with mae_jax's own table, so both sides agree."""
  v = decode_variant(name)
  return v.width, v.depth, v.num_heads, v.patch_size


def bench_torch(args: argparse.Namespace) -> dict[str, Any]:
  import torch  # pylint: disable=g-import-not-at-top
  from transformers import ViTMAEConfig, ViTMAEForPreTraining  # pylint: disable=g-import-not-at-top

  width, depth, heads, patch = _variant(args.variant)
  dw, dd, dh = (int(x) for x in args.decoder.split(","))
  config = ViTMAEConfig(
      hidden_size=width, num_hidden_layers=depth, num_attention_heads=heads,
      intermediate_size=4 * width, patch_size=patch, image_size=args.image_size,
      decoder_hidden_size=dw, decoder_num_hidden_layers=dd, decoder_num_attention_heads=dh,
      decoder_intermediate_size=4 * dw, mask_ratio=args.mask_ratio, norm_pix_loss=True,
      hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, layer_norm_eps=1e-6,
      attn_implementation="sdpa")
  device = "cuda" if torch.cuda.is_available() else "cpu"
  torch.manual_seed(0)
  model = ViTMAEForPreTraining(config).to(device).train()
  opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.95), weight_decay=0.05)
  images = torch.randn(args.batch_size, 3, args.image_size, args.image_size, device=device)
  amp = torch.autocast(device, dtype=torch.bfloat16, enabled=args.dtype == "bfloat16")

  def step() -> torch.Tensor:
    with amp:
      loss = model(pixel_values=images).loss
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    return loss

  first_s, flops, rounds = time_torch_step(step, device, args)
  step_s = min(rounds)
  kind = torch.cuda.get_device_name() if device == "cuda" else "cpu"
  ips = args.batch_size / step_s
  return {"target": "pretrain", "framework": f"torch {torch.__version__} + transformers",
          "variant": args.variant, "image_size": args.image_size,
          "batch_size": args.batch_size, "mask_ratio": args.mask_ratio, "decoder": [dw, dd, dh],
          "dtype": args.dtype, "steps": args.steps, "devices": 1, "device_kind": kind,
          "threads": torch.get_num_threads(),
          "images_per_sec": round(ips, 2), "step_ms": round(1000 * step_s, 2),
          "step_ms_rounds": [round(1000 * x, 2) for x in rounds],
          "compile_s": round(first_s, 2),      # eager: the first step, nothing is compiled
          "flops_per_image": flops / args.batch_size,
          "mfu": peaks.mfu(flops / args.batch_size, ips, kind, args.dtype),
          "peak_memory_bytes": torch.cuda.max_memory_allocated() if device == "cuda" else None}


def time_torch_step(step: Callable[[], Any], device: str, args: argparse.Namespace
                    ) -> tuple[float, float, list[float]]:
  """Times `step` (one optimizer step, returning its loss) as the JAX side is timed: the first
  call apart, one call under torch's FLOP counter, args.warmup_steps calls untimed in all, then
  args.rounds rounds of args.steps (taking turns with the other side under args.lockstep).
  -> (the first call's seconds, FLOPs of one step, seconds per step of each round)."""
  import torch  # pylint: disable=g-import-not-at-top
  from torch.utils.flop_counter import FlopCounterMode  # pylint: disable=g-import-not-at-top
  sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
  t0 = time.perf_counter()
  step()                          # first call: allocations, kernel selection
  sync()
  first_s = time.perf_counter() - t0
  with FlopCounterMode(display=False) as counter:
    step()
  for _ in range(max(args.warmup_steps - 1, 0)):
    step()
  sync()
  if device == "cuda":
    torch.cuda.reset_peak_memory_stats()
  loss = None

  def run_round() -> float:
    nonlocal loss
    t0 = time.perf_counter()
    for _ in range(args.steps):
      loss = step()
    sync()
    return (time.perf_counter() - t0) / args.steps

  rounds = timed_rounds(run_round, args.rounds, args.lockstep)
  if not torch.isfinite(loss):
    raise FloatingPointError("non-finite loss in the benchmark")
  return first_s, float(counter.get_total_flops()), rounds


def _flags(args: argparse.Namespace) -> list[str]:
  return [f"--variant={args.variant}", f"--image_size={args.image_size}",
          f"--batch_size={args.batch_size}", f"--mask_ratio={args.mask_ratio}",
          f"--steps={args.steps}", f"--warmup_steps={args.warmup_steps}",
          f"--dtype={args.dtype}", f"--decoder={args.decoder}", f"--rounds={args.rounds}",
          "--lockstep"]


class _Side:
  """One benchmark process in lockstep: started, then driven round by round over its stdin."""

  def __init__(self, name: str, cmd: list[str], env: dict[str, str] | None = None):
    self.name = name
    self.proc = subprocess.Popen(cmd, env=dict(os.environ, **(env or {})),
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    self.expect("ready")

  def expect(self, word: str) -> str:
    for line in self.proc.stdout:
      if line.startswith(word):
        return line.strip()
    raise RuntimeError(f"the {self.name} benchmark exited (code {self.proc.wait()}) before "
                       f"printing {word!r}; run it alone to see why")

  def round(self) -> float:
    """Runs one round; its ms per step."""
    self.proc.stdin.write("go\n")
    self.proc.stdin.flush()
    return float(self.expect("done").split()[1])

  def result(self) -> dict[str, Any]:
    self.proc.stdin.close()
    lines = self.proc.stdout.read().strip().splitlines()
    if self.proc.wait() != 0 or not lines:
      raise RuntimeError(f"the {self.name} benchmark failed (code {self.proc.returncode})")
    return json.loads(lines[-1])


def compare(args: argparse.Namespace) -> dict[str, Any]:
  """Ours (`python -m mae_jax_bench`) and PyTorch in two processes, taking turns."""
  # Both processes hold the same accelerator: JAX would otherwise reserve 75% of its memory
  # at start and leave PyTorch too little.
  jax_env = {"XLA_PYTHON_CLIENT_MEM_FRACTION":
             os.environ.get("XLA_PYTHON_CLIENT_MEM_FRACTION", "0.45")}
  ours = _Side("jax", [sys.executable, "-m", "mae_jax_bench", "--target=pretrain"]
               + _flags(args) + [f"--attention={args.attention}"], jax_env)
  theirs = _Side("torch", [sys.executable, "-m", "mae_jax_bench.torch_mae"] + _flags(args))
  for r in range(args.rounds):
    print(f"round {r}: jax {ours.round():.1f} ms/step, torch {theirs.round():.1f} ms/step",
          flush=True)
  result = {"jax": ours.result(), "torch": theirs.result()}
  result["jax_over_torch"] = round(result["jax"]["images_per_sec"]
                                   / result["torch"]["images_per_sec"], 3)
  return result


def run_cli(args: argparse.Namespace, compare_fn: Callable[[argparse.Namespace], dict],
            bench_fn: Callable[[argparse.Namespace], dict]) -> None:
  """Every PyTorch bench's command: with --compare, each side's result and the comparison as
  three JSON lines (the last is what scripts read); else this side's result."""
  if args.compare:
    result = compare_fn(args)
    print(json.dumps(result["jax"]), flush=True)
    print(json.dumps(result["torch"]), flush=True)
    print(json.dumps(result), flush=True)
  else:
    print(json.dumps(bench_fn(args)), flush=True)


def main(argv: list[str] | None = None) -> None:
  run_cli(parse_args(argv), compare, bench_torch)


if __name__ == "__main__":
  main()
