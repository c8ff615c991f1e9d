#!/usr/bin/env bash
# One GPU node, all its GPUs: a single mae_jax process drives every local GPU.
set -euo pipefail

usage() {
  cat <<'EOF_USAGE'
Usage: launch/gpu_node.sh --config=FILE[:ARG] --workdir=DIR [options] [-- mae_jax.main flags]

Runs `python -m mae_jax.main` once on this machine, from the repository root; the global batch is split over all
visible GPUs (CUDA_VISIBLE_DEVICES selects a subset).

Options:
  --config=FILE[:ARG]     e.g. configs/tiny_imagenet.py (required)
  --workdir=DIR           checkpoints, metrics, summary.json (required)
  --tfds-data-dir=DIR     TFDS_DATA_DIR for the run
  --setup                 first install jax[cuda12] and this checkout's package
                          (pip install .) into the current Python environment
  --python=BIN            Python interpreter (default: python3)
  --dry-run               print every command instead of running it
  -h, --help              this help

Flags after `--` go to mae_jax.main, e.g. --config.model.dtype=bfloat16.

Example (8xH100, TinyImageNet):
  launch/gpu_node.sh --setup --config=configs/tiny_imagenet.py --workdir=/data/mae/tin
EOF_USAGE
}

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SETUP=0 PYTHON="python3"
EXTRA=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --setup) SETUP=1 ;;
    --python=*) PYTHON="${1#*=}" ;;
    --) shift; EXTRA=("$@"); break ;;
    *) parse_common_arg "$1" ;;
  esac
  shift
done
require "$CONFIG" --config
require "$WORKDIR" --workdir

ROOT="$(repo_root)"
check_cwd
if ((SETUP)); then
  run "$PYTHON" -m pip install -U "jax[cuda12]" "$ROOT"
fi
ENV=()
if [[ -n $TFDS_DIR ]]; then
  ENV=(env "TFDS_DATA_DIR=$TFDS_DIR")
fi
# One process sees every GPU of the node, so no jax.distributed (--distributed=off).
run ${ENV[@]+"${ENV[@]}"} "$PYTHON" -m mae_jax.main --config="$CONFIG" --workdir="$WORKDIR" \
  --distributed=off ${EXTRA[@]+"${EXTRA[@]}"}
