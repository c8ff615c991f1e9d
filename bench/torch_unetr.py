"""The PyTorch side of the 3-D segmentation benchmark: MONAI's UNETR with DiceCELoss at the sizes
of our UNETR step (volumes.py).

Same sizes from the same defaults (volumes.py, so both sides agree): the ViT of --variant
(Ti/16: hidden 192, 12 blocks, 3 heads, MLP 768), 16^3 patches, feature size 16, 64^3 crops of
one channel, 14 classes, batch 1; instance norms and residual blocks (MONAI's res_block=True);
DiceCELoss(to_onehot_y=True, softmax=True); one AdamW step (volumes.py's lr, betas and weight
decay) per iteration, torch.set_num_threads(every core). Prints the JSON of `mae-jax-bench
--target=segment3d`, framework "torch ... + monai ...", as its last stdout line. MONAI installs
without its optional dependencies: `pip install --no-deps monai` (it needs torch and numpy).

  # PyTorch alone:
  python -m mae_jax_bench.torch_unetr --steps=5 --rounds=3
  # Side by side, the two frameworks taking turns round by round (ours: `python -m
  # mae_jax_bench --target=segment3d` in a subprocess):
  python -m mae_jax_bench.torch_unetr --compare --steps=5 --rounds=3

What differs between the two models (the work per step is close, not equal):
  * Depth: MONAI's UNETR fixes its ViT at 12 blocks (`num_layers` is no argument) and taps
    hidden_states_out[3], [6], [9] (blocks 4, 7, 10); ours taps --variant's feature blocks
    (volumes.feature_blocks: 3, 6, 9, 12), the same work. A variant of another depth (10 or
    more) gets MONAI's vit.blocks rebuilt to that many blocks (copies of block 0: weights do
    not change the time); fewer than 10 leave MONAI's taps nothing to tap. MONAI's patch is
    fixed at 16.
  * Tokens: ours prepends a cls token (the MAE encoder's); MONAI's ViT (classification=False)
    has none: 1 + L tokens against L.
  * Positions: MONAI's learned table (a parameter in the AdamW step) against our fixed sin-cos.
  * qkv bias: ours has one; MONAI's default has none, so qkv_bias=True here (the same work).
  * Attention: MONAI's SABlock computes it with explicit einsums (use_flash_attention is off in
    UNETR); ours with config.model.attention (--attention, the kind the result names).
  * FLOPs: torch's FlopCounterMode counts convolutions, transposed ones and matmuls, ours the
    same from the jaxpr; their counts differ by the cls token and the positions.

With --compare, each side is a process that builds its step, compiles and warms up, then they
take turns for --rounds rounds (ours, theirs, ours, ...). The last line is {"jax": {...},
"torch": {...}, "jax_over_torch": volumes/s ratio}.
"""

import argparse
import copy
import os
import sys
from typing import Any

from mae_jax.models import decode_variant
from . import peaks, volumes
from .torch_mae import (_Side, add_common_args, run_cli,  # pylint: disable=protected-access
                        time_torch_step)

MONAI_TAPS = (4, 7, 10)   # UNETR.forward: hidden_states_out[3], [6], [9]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--variant", default=volumes.VARIANT, help="the ViT's size; patch 16")
  p.add_argument("--roi", type=int, default=volumes.ROI, help="side of the cubic crops")
  p.add_argument("--batch_size", type=int, default=volumes.BATCH_SIZE, help="volumes per batch")
  p.add_argument("--num_classes", type=int, default=volumes.NUM_CLASSES)
  p.add_argument("--feature_size", type=int, default=volumes.FEATURE_SIZE)
  p.add_argument("--in_channels", type=int, default=volumes.IN_CHANNELS)
  p.add_argument("--threads", type=int, default=os.cpu_count(), help="torch.set_num_threads")
  add_common_args(p, "segment3d")
  return p.parse_args(argv)


def bench_torch(args: argparse.Namespace) -> dict[str, Any]:
  """Times MONAI's UNETR step; -> the result, keyed as volumes.bench_volume_step's."""
  import torch  # pylint: disable=g-import-not-at-top
  try:
    import monai  # pylint: disable=g-import-not-at-top
    from monai.losses import DiceCELoss  # pylint: disable=g-import-not-at-top
    from monai.networks.nets import UNETR  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise SystemExit("torch_unetr needs MONAI: pip install --no-deps monai") from None

  torch.set_num_threads(args.threads)
  v = decode_variant(args.variant)
  if v.patch_size != 16:
    raise SystemExit(f"--variant={args.variant}: MONAI's UNETR cuts 16^3 patches only")
  if v.depth < MONAI_TAPS[-1]:
    raise SystemExit(f"--variant={args.variant}: MONAI's UNETR taps block {MONAI_TAPS[-1]}; "
                     f"a {v.depth}-block ViT has none")
  if args.roi % 16:
    raise SystemExit(f"--roi={args.roi} is not a multiple of the patch size 16")
  device = "cuda" if torch.cuda.is_available() else "cpu"
  torch.manual_seed(0)
  model = UNETR(in_channels=args.in_channels, out_channels=args.num_classes,
                img_size=(args.roi,) * 3, feature_size=args.feature_size, hidden_size=v.width,
                mlp_dim=int(v.mlp_ratio * v.width), num_heads=v.num_heads, norm_name="instance",
                res_block=True, qkv_bias=True)
  if v.depth != len(model.vit.blocks):
    model.vit.blocks = torch.nn.ModuleList(
        [copy.deepcopy(model.vit.blocks[0]) for _ in range(v.depth)])
  model = model.to(device).train()
  loss_fn = DiceCELoss(to_onehot_y=True, softmax=True)
  opt = torch.optim.AdamW(model.parameters(), lr=volumes.LR, betas=volumes.BETAS,
                          weight_decay=volumes.WEIGHT_DECAY)
  gen = torch.Generator().manual_seed(0)
  shape = (args.batch_size, args.in_channels) + (args.roi,) * 3
  x = torch.randn(*shape, generator=gen).to(device)
  y = torch.randint(0, args.num_classes, (args.batch_size, 1) + (args.roi,) * 3,
                    generator=gen).to(device)
  amp = torch.autocast(device, dtype=torch.bfloat16, enabled=args.dtype == "bfloat16")

  def step() -> torch.Tensor:
    with amp:
      loss = loss_fn(model(x), y)
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    return loss

  first_s, flops, rounds = time_torch_step(step, device, args)
  step_s = min(rounds)
  flops_per_volume = flops / args.batch_size
  kind = torch.cuda.get_device_name() if device == "cuda" else "cpu"
  vps = args.batch_size / step_s
  return {"target": "segment3d",
          "framework": f"torch {torch.__version__} + monai {monai.__version__}",
          "variant": args.variant, "roi": args.roi, "in_channels": args.in_channels,
          "num_classes": args.num_classes, "feature_size": args.feature_size,
          "feature_blocks": [*MONAI_TAPS, v.depth], "batch_size": args.batch_size,
          "dtype": args.dtype, "steps": args.steps, "devices": 1, "device_kind": kind,
          "threads": torch.get_num_threads(), "attention": "einsum",
          "volumes_per_sec": round(vps, 3), "step_ms": round(1000 * step_s, 2),
          "step_ms_rounds": [round(1000 * x, 2) for x in rounds],
          "compile_s": round(first_s, 2),      # eager: the first step, nothing is compiled
          "flops_per_volume": flops_per_volume,
          "mfu": peaks.mfu(flops_per_volume, vps, kind, args.dtype),
          "peak_memory_bytes": torch.cuda.max_memory_allocated() if device == "cuda" else None}


def _flags(args: argparse.Namespace) -> list[str]:
  """The flags both sides take, every one explicit (run.py's defaults are the image steps')."""
  return [f"--variant={args.variant}", f"--roi={args.roi}", f"--batch_size={args.batch_size}",
          f"--num_classes={args.num_classes}", f"--feature_size={args.feature_size}",
          f"--in_channels={args.in_channels}", f"--steps={args.steps}",
          f"--warmup_steps={args.warmup_steps}", f"--rounds={args.rounds}",
          f"--dtype={args.dtype}", "--lockstep"]


def compare(args: argparse.Namespace) -> dict[str, Any]:
  """Ours (`python -m mae_jax_bench --target=segment3d`) and PyTorch in two processes, taking
  turns round by round."""
  # Both processes hold the same accelerator: JAX would otherwise reserve 75% of its memory.
  jax_env = {"XLA_PYTHON_CLIENT_MEM_FRACTION":
             os.environ.get("XLA_PYTHON_CLIENT_MEM_FRACTION", "0.45")}
  ours = _Side("jax", [sys.executable, "-m", "mae_jax_bench", "--target=segment3d"]
               + _flags(args) + [f"--attention={args.attention}"], jax_env)
  theirs = _Side("torch", [sys.executable, "-m", "mae_jax_bench.torch_unetr"]
                 + _flags(args) + [f"--threads={args.threads}"])
  for r in range(args.rounds):
    print(f"round {r}: jax {ours.round():.1f} ms/step, torch {theirs.round():.1f} ms/step",
          flush=True)
  result = {"jax": ours.result(), "torch": theirs.result()}
  result["jax_over_torch"] = round(result["jax"]["volumes_per_sec"]
                                   / result["torch"]["volumes_per_sec"], 3)
  return result


def main(argv: list[str] | None = None) -> None:
  run_cli(parse_args(argv), compare, bench_torch)


if __name__ == "__main__":
  main()
