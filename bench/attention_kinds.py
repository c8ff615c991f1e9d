"""Forward + backward time of each attention kind (mae_jax/models/attention.py) per shape.

What "auto" picks per backend is set from these figures (README, "Speed"):

  python -m mae_jax_bench.attention_kinds             # the MAE shapes at 224 px, batch 256
  python -m mae_jax_bench.attention_kinds --shapes=8x197x16x32 --dtype=float32 --kinds=xla,chunked

A shape is NxTxHxD (batch, tokens, heads, head dim). Prints a table, then one JSON line.
"""

import argparse
import json
import time

import jax
import jax.numpy as jnp

from mae_jax.models import attention

# ViT-L/16 and ViT-B/16 encoders at mask 0.75 / 0.5 / 0 (1 + kept patches), and the 512-wide,
# 16-head decoder on 1 + 196 tokens.
SHAPES = "256x50x16x64,256x50x12x64,256x99x12x64,256x197x12x64,256x197x16x32"


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--shapes", default=SHAPES)
  p.add_argument("--kinds", default="xla,cudnn")
  p.add_argument("--dtype", default="bfloat16")
  p.add_argument("--iters", type=int, default=20)
  args = p.parse_args()

  results = []
  print(f"{'shape':16} {'kind':8} {'ms fwd+bwd':>10}")
  for shape in args.shapes.split(","):
    n, t, h, d = (int(x) for x in shape.split("x"))
    keys = jax.random.split(jax.random.key(0), 4)
    q, k, v, c = (jax.random.normal(key, (n, t, h, d), args.dtype) for key in keys)
    for kind in args.kinds.split(","):
      loss = lambda q, k, v, kind=kind: jnp.sum(   # noqa: E731
          attention.dot_product_attention(q, k, v, kind).astype(jnp.float32) * c)
      step = jax.jit(jax.grad(loss, (0, 1, 2)))
      try:
        jax.block_until_ready(step(q, k, v))
      except Exception as e:  # pylint: disable=broad-except  (a kind may not run here)
        print(f"{shape:16} {kind:8} {'n/a':>10}  {type(e).__name__}: {str(e)[:80]}")
        continue
      t0 = time.perf_counter()
      for _ in range(args.iters):
        out = step(q, k, v)
      jax.block_until_ready(out)
      ms = 1000 * (time.perf_counter() - t0) / args.iters
      results.append({"shape": shape, "kind": kind, "ms": round(ms, 3)})
      print(f"{shape:16} {kind:8} {ms:10.3f}", flush=True)
  print(json.dumps({"dtype": args.dtype, "device": jax.devices()[0].device_kind,
                    "results": results}))


if __name__ == "__main__":
  main()
