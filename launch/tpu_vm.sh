#!/usr/bin/env bash
# Train adapt_jax on a Cloud TPU VM or pod slice: create it, install this checkout in a Python
# 3.11 environment on every worker, prepare the data, start a config on all workers, follow
# the log, delete it.
#
# Usage (from anywhere; the checkout containing this script is what gets copied):
#   TPU_NAME=adapt launch/tpu_vm.sh [all|create|setup|data|train|logs|ssh|delete] [-- FLAGS...]
#     all (default) = create + setup + data + train. FLAGS after `--` go to
#     `python -m adapt_jax.main`, e.g. -- --config.method=adapt_strict
#
# Environment variables (defaults in brackets):
#   TPU_NAME      name of the TPU VM (required)
#   ACCELERATOR   [v4-8]        v4-8, v4-32, v5litepod-8, v5litepod-16, v5p-8, v6e-8, ...
#   ZONE          [per family]  v4: us-central2-b, v5e: us-west4-a, v5p: us-east5-a,
#                               v6e: us-east1-d (any zone that has the type works)
#   RUNTIME       [per family]  TPU software version (--version), from
#                               https://cloud.google.com/tpu/docs/runtimes: v4 and older
#                               tpu-ubuntu2204-base, v5e v2-alpha-tpuv5-lite,
#                               v5p v2-alpha-tpuv5, v6e v2-alpha-tpuv6e
#   PROJECT       [gcloud's default]
#   SPOT          [0]           1: a spot (preemptible) VM. Use BUCKET with it: a preempted spot
#                               VM is deleted with its disk; rerun `create setup train` and the
#                               run resumes from the bucket
#   BUCKET        []            a GCS bucket (name, no gs://): the workdir defaults to
#                               gs://$BUCKET/adapt_jax/runs/$TPU_NAME (durable, shared by all
#                               workers; required for multi-host slices)
#   WORKDIR       [gs://$BUCKET/adapt_jax/runs/$TPU_NAME, or runs/$TPU_NAME without BUCKET]
#   CONFIG        [configs/biggan_tiny.py]  config file, optionally with :METHOD
#   DATASET       []            TFDS name to prepare in `data` (e.g. cifar10, stl10); empty:
#                               the config needs no TFDS data (digits, folder)
#   DATA_DIR      [gs://$BUCKET/tensorflow_datasets with BUCKET, else ~/tensorflow_datasets]
#                               TFDS data_dir, passed to the run as --config.data.data_dir. A
#                               gs:// DATA_DIR is prepared once (worker 0); a local one on every
#                               worker
#   PYTHON        [3.11]        Python version of the environment (jax, flax 0.12 and orbax 0.12
#                               need >= 3.11; TPU images ship 3.10)
#   VENV          [adapt_venv]  where the environment lives on the workers (under $HOME)
#   REMOTE_DIR    [adapt_jax]   where the code lives on the workers (under $HOME)
#   JAX_SPEC      [jax[tpu]]    pip requirement that installs JAX for TPU
#   NUM_WORKERS   [from the accelerator type]  hosts of the slice; >1 adds
#                               --config.train.distributed=True (jax.distributed)
#   DRY_RUN       [0]           1: print the gcloud commands instead of running them
#
# Python: `uv` (installed with the image's pip) creates the environment from a standalone
# CPython build: no apt repository (deadsnakes) or compiler (pyenv) needed, the same Python on
# every worker, and in seconds.
#
# Multi-host slices run the same command on every worker (`--worker=all`); each process feeds
# its share of the global batch, jax.distributed.initialize() finds the others, process 0 writes
# the run's files. Logs stay on each worker (~/adapt_logs); `logs` follows worker 0's.
set -euo pipefail

: "${TPU_NAME:?set TPU_NAME, e.g. TPU_NAME=adapt $0}"
ACCELERATOR=${ACCELERATOR:-v4-8}
FAMILY=${ACCELERATOR%%-*}
case $FAMILY in
  v2|v3|v4) DEFAULT_RUNTIME=tpu-ubuntu2204-base DEFAULT_ZONE=us-central2-b ;;
  v5litepod|v5e) DEFAULT_RUNTIME=v2-alpha-tpuv5-lite DEFAULT_ZONE=us-west4-a ;;
  v5p) DEFAULT_RUNTIME=v2-alpha-tpuv5 DEFAULT_ZONE=us-east5-a ;;
  v6e) DEFAULT_RUNTIME=v2-alpha-tpuv6e DEFAULT_ZONE=us-east1-d ;;
  *) echo "unknown accelerator family '$FAMILY' in ACCELERATOR=$ACCELERATOR; set RUNTIME" \
       "and ZONE yourself" >&2
     DEFAULT_RUNTIME=${RUNTIME:-} DEFAULT_ZONE=${ZONE:-} ;;
esac
RUNTIME=${RUNTIME:-$DEFAULT_RUNTIME}
ZONE=${ZONE:-$DEFAULT_ZONE}
[[ -n $RUNTIME && -n $ZONE ]] || exit 2
SPOT=${SPOT:-0}
BUCKET=${BUCKET:-}
if [[ -n $BUCKET ]]; then
  WORKDIR=${WORKDIR:-gs://$BUCKET/adapt_jax/runs/$TPU_NAME}
  DATA_DIR=${DATA_DIR:-gs://$BUCKET/tensorflow_datasets}
else
  WORKDIR=${WORKDIR:-runs/$TPU_NAME}
  DATA_DIR=${DATA_DIR:-}
fi
CONFIG=${CONFIG:-configs/biggan_tiny.py}
DATASET=${DATASET:-}
PYTHON=${PYTHON:-3.11}
VENV=${VENV:-adapt_venv}
REMOTE_DIR=${REMOTE_DIR:-adapt_jax}
JAX_SPEC=${JAX_SPEC:-jax[tpu]}
DRY_RUN=${DRY_RUN:-0}
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY="\$HOME/$VENV/bin/python"

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

on_workers() {  # one shell command on the given workers (all, or 0)
  run "${GCLOUD[@]}" ssh "$TPU_NAME" "${LOC[@]}" --worker="$1" --command="$2"
}

num_workers() {
  # v2-v4 and v5p name TensorCores (2 per chip, 4 chips per host); v5e and v6e name chips
  # (up to 8 on one host, 4 per host in multi-host slices).
  if [[ -n ${NUM_WORKERS:-} ]]; then echo "$NUM_WORKERS"; return; fi
  local n=${ACCELERATOR##*-}
  case $FAMILY in
    v2|v3|v4|v5p) echo $(( n <= 8 ? 1 : n / 8 )) ;;
    *) echo $(( n <= 8 ? 1 : n / 4 )) ;;
  esac
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
  local uv="\$HOME/.local/bin/uv"
  local steps=(
    "mkdir -p $REMOTE_DIR && tar -xzf adapt_jax.tar.gz -C $REMOTE_DIR"
    "python3 -m pip install -q --user -U uv"
    "$uv venv --python $PYTHON --allow-existing \$HOME/$VENV"
    "$uv pip install -q --python $PY -U '$JAX_SPEC' -e ./$REMOTE_DIR'[train]'"
    "$PY -c 'import sys, jax; print(sys.version.split()[0], jax.process_index(), jax.device_count())'"
  )
  local joined
  joined=$(printf ' && %s' "${steps[@]}")
  on_workers all "${joined# && }"
}

data() {
  if [[ -z $DATASET ]]; then
    echo "DATASET is empty: nothing to prepare (set e.g. DATASET=cifar10 for a TFDS config)."
    return
  fi
  local target=${DATA_DIR:-\$HOME/tensorflow_datasets} workers=all
  [[ $target == gs://* ]] && workers=0  # one shared copy, prepared once
  # Building a TFDS dataset needs TensorFlow; training reads the prepared files without it.
  on_workers "$workers" \
    "\$HOME/.local/bin/uv pip install -q --python $PY tensorflow-cpu \
     && \$HOME/$VENV/bin/tfds build $DATASET --data_dir=$target --file_format=array_record"
}

train() {
  local flags=(--config="$CONFIG" --workdir="$WORKDIR")
  [[ -n $DATA_DIR ]] && flags+=(--config.data.data_dir="$DATA_DIR")
  flags+=("${EXTRA[@]}")
  if (( $(num_workers) > 1 )); then
    flags+=(--config.train.distributed=True)
    [[ $WORKDIR == gs://* ]] || echo "warning: WORKDIR=$WORKDIR is local to each worker of" \
      "this multi-host slice; set BUCKET so that all workers share one durable workdir." >&2
  fi
  local quoted
  quoted=$(printf ' %q' "${flags[@]}")
  # nohup: training outlives the ssh session; rerunning `train` resumes from the checkpoint.
  local log="\$HOME/adapt_logs/train.log"
  on_workers all "cd $REMOTE_DIR && mkdir -p \$HOME/adapt_logs && nohup $PY -m adapt_jax.main$quoted > $log 2>&1 < /dev/null &"
  echo "Started. Follow it with: TPU_NAME=$TPU_NAME ACCELERATOR=$ACCELERATOR $0 logs"
}

logs() {
  on_workers 0 "tail -n 50 -f \$HOME/adapt_logs/train.log"
}

case $ACTION in
  all) create; setup; data; train ;;
  create) create ;;
  setup) setup ;;
  data) data ;;
  train) train ;;
  logs) logs ;;
  ssh) run "${GCLOUD[@]}" ssh "$TPU_NAME" "${LOC[@]}" --worker=0 ;;
  delete) run "${GCLOUD[@]}" delete "$TPU_NAME" "${LOC[@]}" --quiet ;;
  *) echo "unknown action '$ACTION': all|create|setup|data|train|logs|ssh|delete" >&2; exit 2 ;;
esac
