#!/usr/bin/env bash
# Multi-node GPU training under SLURM: one mae_jax process per GPU, one job over all nodes.
set -euo pipefail

usage() {
  cat <<'EOF_USAGE'
Usage: launch/gpu_slurm.sh --nodes=N --config=FILE[:ARG] --workdir=DIR [options] [-- mae_jax.main flags]

Submits a batch job (sbatch) whose single step (srun) starts N x GPUS tasks, one per GPU.
jax.distributed configures itself from SLURM's variables: process id = SLURM_PROCID,
GPU = SLURM_LOCALID, coordinator = the first node. The workdir must be on a file system
all nodes share. Run from the repository root on a login node whose environment
(python3 with jax[cuda12] and this package installed) the compute nodes share.

Options:
  --nodes=N               nodes (required)
  --gpus-per-node=G       GPUs per node, one task each (default: 8)
  --cpus-per-task=C       CPU cores per task (input pipeline), default: SLURM's
  --partition=P           SLURM partition
  --account=A             SLURM account
  --time=T                time limit, e.g. 24:00:00
  --job-name=NAME         default: mae_jax
  --config=FILE[:ARG]     e.g. configs/tiny_imagenet.py (required)
  --workdir=DIR           shared checkpoints / metrics / summary.json (required)
  --tfds-data-dir=DIR     TFDS_DATA_DIR for the run
  --python=BIN            Python interpreter on the nodes (default: python3)
  --dry-run               print the sbatch command instead of submitting it
  -h, --help              this help

Flags after `--` go to mae_jax.main. The job's output goes to slurm-mae_jax-JOBID.out.

Example (2 nodes x 8 H100, TinyImageNet):
  launch/gpu_slurm.sh --nodes=2 --partition=gpu --time=12:00:00 \
      --config=configs/tiny_imagenet.py --workdir=/shared/mae/tin
EOF_USAGE
}

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

NODES="" GPUS=8 CPUS="" PARTITION="" ACCOUNT="" TIME="" JOB_NAME="mae_jax"
PYTHON="python3"
EXTRA=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --nodes=*) NODES="${1#*=}" ;;
    --gpus-per-node=*) GPUS="${1#*=}" ;;
    --cpus-per-task=*) CPUS="${1#*=}" ;;
    --partition=*) PARTITION="${1#*=}" ;;
    --account=*) ACCOUNT="${1#*=}" ;;
    --time=*) TIME="${1#*=}" ;;
    --job-name=*) JOB_NAME="${1#*=}" ;;
    --python=*) PYTHON="${1#*=}" ;;
    --) shift; EXTRA=("$@"); break ;;
    *) parse_common_arg "$1" ;;
  esac
  shift
done
require "$NODES" --nodes
require "$CONFIG" --config
require "$WORKDIR" --workdir
[[ $NODES =~ ^[1-9][0-9]*$ ]] || die "--nodes must be a positive integer, got '$NODES'"
[[ $GPUS =~ ^[1-9][0-9]*$ ]] || die "--gpus-per-node must be a positive integer, got '$GPUS'"

SBATCH=(sbatch --job-name="$JOB_NAME" --nodes="$NODES" --ntasks-per-node="$GPUS"
        --gpus-per-node="$GPUS" --output="slurm-$JOB_NAME-%j.out")
[[ -z $CPUS ]] || SBATCH+=(--cpus-per-task="$CPUS")
[[ -z $PARTITION ]] || SBATCH+=(--partition="$PARTITION")
[[ -z $ACCOUNT ]] || SBATCH+=(--account="$ACCOUNT")
[[ -z $TIME ]] || SBATCH+=(--time="$TIME")

# Each task sees all GPUs of its node; JAX picks GPU SLURM_LOCALID (--distributed=on makes
# the SLURM detection explicit rather than relying on the task count).
STEP=(srun --kill-on-bad-exit=1)
if [[ -n $TFDS_DIR ]]; then
  STEP+=(env "TFDS_DATA_DIR=$TFDS_DIR")
fi
STEP+=("$PYTHON" -m mae_jax.main --config="$CONFIG" --workdir="$WORKDIR" --distributed=on
       ${EXTRA[@]+"${EXTRA[@]}"})
check_cwd
run "${SBATCH[@]}" --wrap="$(command_line "${STEP[@]}")"
