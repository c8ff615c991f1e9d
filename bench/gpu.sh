#!/usr/bin/env bash
# The GPU measurements in one go: bf16 pretrain steps of ViT-L/16 and ViT-B/16 @224, batch
# 256, ours beside HF ViTMAE (PyTorch AMP + SDPA) taking turns; a profile of ours on L/16
# (its log lists the costliest GPU kernels); XLA's attention instead of cuDNN's on L/16; and
# the mask-ratio sweep on B/16. Each run's log in $OUT (default /tmp/mae_gpu_bench) ends
# with its JSON result; the table at the end collects them.
#
#   bash bench/gpu.sh                  # needs jax[cuda], torch with CUDA, transformers
#   STEPS=20 ROUNDS=5 bash bench/gpu.sh
#   VARIANTS="mu/8 Ti/8" IMAGE=32 BATCH=4 STEPS=1 ROUNDS=1 EXTRAS=0 bash bench/gpu.sh   # CPU smoke
#
# It runs the installed package (pip install -e .): python -m mae_jax_bench[.torch_mae].
set -uo pipefail
OUT=${OUT:-/tmp/mae_gpu_bench}
VARIANTS=${VARIANTS:-L/16 B/16}   # first: attention A/B; last: mask sweep
IMAGE=${IMAGE:-224}
BATCH=${BATCH:-256}
STEPS=${STEPS:-10}
ROUNDS=${ROUNDS:-3}
EXTRAS=${EXTRAS:-1}   # 0: the comparisons and the mask sweep only (no profile, no XLA attention)
PY=${PYTHON:-python3}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1

nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,driver_version --format=csv || true
"$PY" -c 'import jax, torch, transformers, flax; print("jax", jax.__version__, jax.devices(),
"| flax", flax.__version__, "| torch", torch.__version__, "| transformers", transformers.__version__)'

common=(--image_size="$IMAGE" --batch_size="$BATCH" --dtype=bfloat16 --steps="$STEPS" --rounds="$ROUNDS")
run() {   # run NAME CMD...: output to $OUT/NAME.log; its last JSON line is the result
  local name=$1; shift
  echo "== $name: $*"
  "$@" > "$OUT/$name.log" 2>&1
  grep -E '^round |Error' "$OUT/$name.log" | tail -n 5
}

# Most important first: a run cut off by a time limit still leaves the earlier JSON files.
read -ra variants <<< "$VARIANTS"
for v in "${variants[@]}"; do
  run "compare_${v/\//}" "$PY" -m mae_jax_bench.torch_mae --compare --variant="$v" "${common[@]}"
  [[ $v == "${variants[0]}" && $EXTRAS == 1 ]] && run "profile_${v/\//}" "$PY" -m mae_jax_bench --target=pretrain \
      --variant="$v" --profile_dir=/tmp/mae_profile "${common[@]/--rounds=*/--rounds=1}"
done
# "auto" (the compare runs) is cuDNN's fused attention on NVIDIA GPUs in bf16; XLA's for contrast.
[[ $EXTRAS == 1 ]] && run "jax_${variants[0]/\//}_xla" "$PY" -m mae_jax_bench --target=pretrain \
    --variant="${variants[0]}" --attention=xla "${common[@]}"
for m in 0 0.5 0.9; do   # 0.75 is the compare run
  run "jax_${variants[-1]/\//}_mask$m" "$PY" -m mae_jax_bench --target=pretrain \
      --variant="${variants[-1]}" --mask_ratio="$m" "${common[@]}"
done

"$PY" - "$OUT" <<'EOF'
import glob, json, os, sys
print(f"{'run':22} {'side':6} {'attn':6} {'img/s':>8} {'ms/step':>8} {'MFU':>6} {'GiB':>6} {'compile_s':>9}")
for path in sorted(glob.glob(os.path.join(sys.argv[1], "*.log"))):
  name = os.path.basename(path)[:-4]
  results = [line for line in open(path) if line.startswith("{")]
  if not results:
    print(f"{name:22} failed: see {name}.log"); continue
  result = json.loads(results[-1])
  sides = ({"jax": result["jax"], "torch": result["torch"]} if "jax_over_torch" in result
           else {"jax": result})
  for side, r in sides.items():
    mem = (r.get("peak_memory_bytes") or 0) / 2**30
    print(f"{name:22} {side:6} {r.get('attention', 'sdpa'):6} {r['images_per_sec']:8.1f} "
          f"{r['step_ms']:8.1f} {r['mfu'] or 0:6.3f} {mem:6.1f} {r['compile_s']:9.1f}")
  if "jax_over_torch" in result:
    print(f"{name:22} jax/torch {result['jax_over_torch']}")
EOF
