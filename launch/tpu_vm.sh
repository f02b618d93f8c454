#!/usr/bin/env bash
# Train adapt_jax on a Cloud TPU VM: create it, copy and install this checkout on every worker,
# start a config on all of them, follow the log, delete it.
#
# Usage (from anywhere; the checkout containing this script is what gets copied):
#   TPU_NAME=adapt-v4 launch/tpu_vm.sh [all|create|setup|train|logs|ssh|delete] [-- FLAGS...]
#     all (default) = create + setup + train. FLAGS after `--` go to `python -m adapt_jax.main`,
#     e.g. -- --config.method=adapt_strict --config.sparse.density_g=0.1
#
# Environment variables (defaults in brackets):
#   TPU_NAME      name of the TPU VM (required)
#   ZONE          [us-central2-b]          gcloud zone that has the accelerator type
#   ACCELERATOR   [v4-8]                   e.g. v4-8 (one host), v4-32 or v5litepod-16 (multi-host)
#   RUNTIME       [tpu-ubuntu2204-base]    TPU software version (--version)
#   PROJECT       [gcloud's default]       Google Cloud project
#   SPOT          [0]                      1: create a spot (preemptible) VM; rerun `train` after
#                                          a preemption and the run resumes from its checkpoint
#   CONFIG        [configs/biggan_tiny.py] config file, optionally with :METHOD
#   WORKDIR       [runs/$TPU_NAME]         run directory on the workers. Multi-host: it must be
#                                          one filesystem shared by all workers (e.g. a gcsfuse
#                                          or Filestore mount), since every host writes
#                                          checkpoints into it
#   REMOTE_DIR    [adapt_jax]              where the code lives on the workers (under $HOME)
#   JAX_SPEC      [jax[tpu]]               pip requirement that installs JAX for TPU
#   DRY_RUN       [0]                      1: print the gcloud commands instead of running them
#   NUM_WORKERS   [asked from gcloud]      hosts of the slice; >1 adds
#                                          --config.train.distributed=True (jax.distributed)
#
# Multi-host slices run the same command on every worker (`--worker=all`); each process feeds its
# share of the global batch and jax.distributed.initialize() finds the others. The TensorBoard
# events, samples and summary.json come from process 0.
set -euo pipefail

: "${TPU_NAME:?set TPU_NAME, e.g. TPU_NAME=adapt-v4 $0}"
ZONE=${ZONE:-us-central2-b}
ACCELERATOR=${ACCELERATOR:-v4-8}
RUNTIME=${RUNTIME:-tpu-ubuntu2204-base}
SPOT=${SPOT:-0}
CONFIG=${CONFIG:-configs/biggan_tiny.py}
WORKDIR=${WORKDIR:-runs/$TPU_NAME}
REMOTE_DIR=${REMOTE_DIR:-adapt_jax}
JAX_SPEC=${JAX_SPEC:-jax[tpu]}
DRY_RUN=${DRY_RUN:-0}
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

ACTION=${1:-all}
[[ $# -gt 0 ]] && shift
[[ ${1:-} == "--" ]] && shift
EXTRA=("$@")

GCLOUD=(gcloud compute tpus tpu-vm)
LOC=(--zone="$ZONE")
[[ -n ${PROJECT:-} ]] && LOC+=(--project="$PROJECT")

run() {  # print, then run unless DRY_RUN=1
  printf '+'; printf ' %q' "$@"; printf '\n'
  [[ $DRY_RUN == 1 ]] || "$@"
}

on_all() {  # one shell command on every worker
  run "${GCLOUD[@]}" ssh "$TPU_NAME" "${LOC[@]}" --worker=all --command="$1"
}

num_workers() {
  if [[ -n ${NUM_WORKERS:-} ]]; then echo "$NUM_WORKERS"; return; fi
  if [[ $DRY_RUN == 1 ]]; then echo 1; return; fi
  "${GCLOUD[@]}" describe "$TPU_NAME" "${LOC[@]}" \
    --format='value(networkEndpoints[].ipAddress)' | tr ';' '\n' | grep -c .
}

create() {
  local flags=(--accelerator-type="$ACCELERATOR" --version="$RUNTIME")
  [[ $SPOT == 1 ]] && flags+=(--spot)
  run "${GCLOUD[@]}" create "$TPU_NAME" "${LOC[@]}" "${flags[@]}"
}

setup() {
  # This checkout's tracked and untracked-but-not-ignored files (no runs/, no caches).
  local tarball
  tarball=$(mktemp -t adapt_jax.XXXXXX.tar.gz)
  (cd "$REPO" && git ls-files -z --cached --others --exclude-standard \
    | tar --null -czf "$tarball" -T -)
  run "${GCLOUD[@]}" scp "$tarball" "$TPU_NAME:adapt_jax.tar.gz" "${LOC[@]}" --worker=all
  rm -f "$tarball"
  on_all "mkdir -p $REMOTE_DIR && tar -xzf adapt_jax.tar.gz -C $REMOTE_DIR \
    && python3 -m pip install -q -U pip && python3 -m pip install -q -U '$JAX_SPEC' \
    && python3 -m pip install -q -e './$REMOTE_DIR[train]' \
    && python3 -c 'import jax; print(jax.process_index(), jax.device_count())'"
}

train() {
  local flags=(--config="$CONFIG" --workdir="$WORKDIR" "${EXTRA[@]}")
  if (( $(num_workers) > 1 )); then flags+=(--config.train.distributed=True); fi
  local quoted
  quoted=$(printf ' %q' "${flags[@]}")
  # nohup: training outlives the ssh session; rerunning `train` resumes from the checkpoint.
  on_all "cd $REMOTE_DIR && mkdir -p $WORKDIR && nohup python3 -m adapt_jax.main$quoted \
    > $WORKDIR/train.\$(hostname).log 2>&1 < /dev/null &"
  echo "Started. Follow it with: TPU_NAME=$TPU_NAME $0 logs"
}

logs() {
  run "${GCLOUD[@]}" ssh "$TPU_NAME" "${LOC[@]}" --worker=0 \
    --command="tail -n 50 -f $REMOTE_DIR/$WORKDIR/train.*.log"
}

case $ACTION in
  all) create; setup; train ;;
  create) create ;;
  setup) setup ;;
  train) train ;;
  logs) logs ;;
  ssh) run "${GCLOUD[@]}" ssh "$TPU_NAME" "${LOC[@]}" --worker=0 ;;
  delete) run "${GCLOUD[@]}" delete "$TPU_NAME" "${LOC[@]}" --quiet ;;
  *) echo "unknown action '$ACTION': all|create|setup|train|logs|ssh|delete" >&2; exit 2 ;;
esac
