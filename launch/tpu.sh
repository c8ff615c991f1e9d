#!/usr/bin/env bash
# Cloud TPU VMs for mae_jax: create a slice, set up its workers, run, follow, delete.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: launch/tpu.sh COMMAND --name=NAME --zone=ZONE [options] [-- mae_jax.main flags]

Commands:
  create  Request a TPU slice as a queued resource and wait until it is ACTIVE.
            --accelerator=TYPE   e.g. v4-8, v4-32, v5litepod-8 (v5e), v5p-8, v6e-8 (required)
            --runtime=VERSION    TPU software version; default from TYPE: v4 and older
                                 tpu-ubuntu2204-base, v5e v2-alpha-tpuv5-lite,
                                 v5p v2-alpha-tpuv5, v6e v2-alpha-tpuv6e
            --spot               spot capacity (default; cheaper, may be preempted)
            --on-demand          on-demand capacity
            --no-wait            return once the request is queued
  setup   Copy this checkout (git HEAD) to every worker and install jax[tpu] and the
          package there, into a fresh Python venv made with uv.
            --python-version=V   the venv's Python (default: 3.11)
  run     Start `python3 -m mae_jax.main` on every worker (one process per worker, one
          job over the whole slice), then follow worker 0's log (Ctrl-C stops following,
          not training).
            --config=FILE[:ARG]  e.g. configs/pets.py (required)
            --workdir=gs://...   shared by all workers (required)
            --tfds-data-dir=gs://...  TFDS_DATA_DIR on the workers
            --no-follow          start and return
          Flags after `--` go to mae_jax.main (e.g. --config.pretrain.batch_size=4096).
  logs    Follow the run's log (--worker=N, default 0).
  delete  Delete the queued resource and its TPU VM.

Common options:
  --name=NAME      queued resource and TPU VM name (required)
  --zone=ZONE      e.g. us-central2-b (v4), us-west4-a (v5e) (required)
  --project=ID     default: gcloud's configured project
  --dry-run        print every command instead of running it
  -h, --help       this help

Example (v4-8, Oxford pets):
  launch/tpu.sh create --name=mae --zone=us-central2-b --accelerator=v4-8
  launch/tpu.sh setup  --name=mae --zone=us-central2-b
  launch/tpu.sh run    --name=mae --zone=us-central2-b --config=configs/pets.py \
      --workdir=gs://BUCKET/mae/pets --tfds-data-dir=gs://BUCKET/tensorflow_datasets
  launch/tpu.sh delete --name=mae --zone=us-central2-b
EOF
}

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

REMOTE_DIR="mae_jax"             # on each worker, relative to the ssh user's home
REMOTE_VENV="mae_jax_venv"       # TPU images ship Python 3.10; jax and flax need >= 3.11
REMOTE_LOG="mae_jax.log"
TARBALL="/tmp/mae_jax_src.tar.gz"

default_runtime() {
  case "$1" in
    v2-* | v3-* | v4-*) echo "tpu-ubuntu2204-base" ;;
    v5litepod-* | v5e-*) echo "v2-alpha-tpuv5-lite" ;;
    v5p-*) echo "v2-alpha-tpuv5" ;;
    v6e-*) echo "v2-alpha-tpuv6e" ;;
    *) die "no default --runtime for accelerator '$1'; pass --runtime=VERSION" ;;
  esac
}

COMMAND="${1:-}"
if [[ $COMMAND == "-h" || $COMMAND == "--help" || -z $COMMAND ]]; then
  usage
  exit 0
fi
shift
NAME="" ZONE="" PROJECT="" ACCELERATOR="" RUNTIME="" SPOT=1 WAIT=1
FOLLOW=1 WORKER=0 PY_VERSION=3.11
EXTRA=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --name=*) NAME="${1#*=}" ;;
    --zone=*) ZONE="${1#*=}" ;;
    --project=*) PROJECT="${1#*=}" ;;
    --accelerator=*) ACCELERATOR="${1#*=}" ;;
    --runtime=*) RUNTIME="${1#*=}" ;;
    --spot) SPOT=1 ;;
    --on-demand) SPOT=0 ;;
    --no-wait) WAIT=0 ;;
    --no-follow) FOLLOW=0 ;;
    --worker=*) WORKER="${1#*=}" ;;
    --python-version=*) PY_VERSION="${1#*=}" ;;
    --) shift; EXTRA=("$@"); break ;;
    *) parse_common_arg "$1" ;;
  esac
  shift
done
require "$NAME" --name
require "$ZONE" --zone
LOCATION=(--zone="$ZONE")
if [[ -n $PROJECT ]]; then
  LOCATION+=(--project="$PROJECT")
fi

ssh_workers() {  # ssh_workers WORKER REMOTE_COMMAND
  run gcloud compute tpus tpu-vm ssh "$NAME" "${LOCATION[@]}" --worker="$1" --command="$2"
}

cmd_create() {
  require "$ACCELERATOR" --accelerator
  local runtime="${RUNTIME:-$(default_runtime "$ACCELERATOR")}"
  local capacity=()
  if ((SPOT)); then
    capacity=(--spot)
  fi
  run gcloud compute tpus queued-resources create "$NAME" --node-id="$NAME" "${LOCATION[@]}" \
    --accelerator-type="$ACCELERATOR" --runtime-version="$runtime" ${capacity[@]+"${capacity[@]}"}
  if ((!WAIT)); then
    return
  fi
  local describe=(gcloud compute tpus queued-resources describe "$NAME" "${LOCATION[@]}"
                  --format="value(state.state)")
  if ((DRY_RUN)); then
    run "${describe[@]}"
    return
  fi
  local state
  while true; do
    state="$("${describe[@]}")"
    echo "queued resource $NAME: $state" >&2
    case "$state" in
      ACTIVE) return ;;
      FAILED | SUSPENDED) die "queued resource $NAME is $state" ;;
    esac
    sleep 30
  done
}

cmd_setup() {
  local root
  root="$(repo_root)"
  if [[ -n "$(git -C "$root" status --porcelain --untracked-files=no)" ]]; then
    echo "warning: uncommitted changes are not copied (setup ships git HEAD)" >&2
  fi
  run git -C "$root" archive --format=tar.gz --output="$TARBALL" HEAD
  run gcloud compute tpus tpu-vm scp "$TARBALL" "$NAME:$REMOTE_DIR.tar.gz" "${LOCATION[@]}" \
    --worker=all
  # uv fetches a Python the image lacks. google-cloud-storage: tensorboardX writes event files
  # to gs:// with it.
  ssh_workers all "rm -rf $REMOTE_DIR $REMOTE_VENV && mkdir -p $REMOTE_DIR \
&& tar xzf $REMOTE_DIR.tar.gz -C $REMOTE_DIR && python3 -m pip install --user -U uv \
&& python3 -m uv venv --python $PY_VERSION $REMOTE_VENV && cd $REMOTE_DIR \
&& python3 -m uv pip install --python ~/$REMOTE_VENV/bin/python -U 'jax[tpu]' google-cloud-storage \
."
}

cmd_run() {
  require "$CONFIG" --config
  require "$WORKDIR" --workdir
  # Every worker runs the same command; jax.distributed finds the others from the TPU
  # metadata (--distributed=on), and only process 0 prints or writes single-copy files.
  local main=("../$REMOTE_VENV/bin/python" -m mae_jax.main --config="$CONFIG" --workdir="$WORKDIR" --distributed=on
              ${EXTRA[@]+"${EXTRA[@]}"})
  local env_prefix=""
  if [[ -n $TFDS_DIR ]]; then
    env_prefix="TFDS_DATA_DIR=$(quote "$TFDS_DIR") "
  fi
  # setsid + redirections: the job outlives the ssh session that starts it.
  ssh_workers all "cd $REMOTE_DIR && ${env_prefix}setsid nohup $(command_line "${main[@]}") \
> ~/$REMOTE_LOG 2>&1 < /dev/null &"
  if ((FOLLOW)); then
    cmd_logs
  fi
}

cmd_logs() {
  ssh_workers "$WORKER" "tail -n +1 -F ~/$REMOTE_LOG"
}

cmd_delete() {
  # --force deletes the TPU VM first; --quiet skips the confirmation prompt.
  run gcloud compute tpus queued-resources delete "$NAME" "${LOCATION[@]}" --force --quiet
}

case "$COMMAND" in
  create) cmd_create ;;
  setup) cmd_setup ;;
  run) cmd_run ;;
  logs) cmd_logs ;;
  delete) cmd_delete ;;
  *) die "unknown command '$COMMAND'; one of: create setup run logs delete" ;;
esac
