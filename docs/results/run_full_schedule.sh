#!/usr/bin/env bash
# The full-schedule comparison of docs/results.md: the digits config as shipped (2,500
# iterations, its own schedules), every method, d_G in {20%, 10%}, seeds 0, 1, 2. Resumable:
# rerun to finish what an interruption left. From the repository root:
#   nohup nice -n 10 bash docs/results/run_full_schedule.sh > runs/sweeps/full.log 2>&1 &
# The balance band of the density-controlled methods (dda, adapt_*) follows the BR c(t) that the
# same G with D at d_max showed (balance.band='reference'): SDST-RigL with a dense D for ADAPT
# (its G is RigL-dynamic), STATIC with a dense D for DDA (static G), both at the same d_G and
# seed 0 (with the config as shipped, the d_G = 10% one is the run whose BR history is
# configs/reference/biggan_tiny_rigl_g10_dmax1.json). The published comparison predates two
# changes of the default and pins what it used (PINNED below): the centred band c(t) ± 25%
# (the default's is [c(t), 1.4 c(t)]) and equal learning rates 2e-4 (the default's are
# G 1e-4, D 4e-4). PINNED="" runs the config as shipped.
set -uo pipefail
W=$(realpath -m "${WORKDIR:-runs/sweeps/full}")
SEEDS=${SEEDS:-0 1 2}
DENSITIES=${DENSITIES:-0.2 0.1}  # every seed of one d_G before the next
PINNED=${PINNED---set=balance.reference_offset=0.0 --set=balance.reference_width=0.25
  --set=train.lr_g=2e-4 --set=train.lr_d=2e-4}
COMMON=(--config=configs/biggan_tiny.py --workdir="$W" $PINNED
  --set=train.sample_every=100000 --set=eval.every=1250 --set=eval.cache_dir="$(dirname "$W")/eval_cache")
sweep() { python -m adapt_jax.sweep "${COMMON[@]}" "$@"; }  # one run at a time; pairs below
ref() { echo "--set=balance.reference=$W/$1-strong-g$2-s0"; }  # $1 method, $2 d_G

for dg in $DENSITIES; do
  # The references (strong baselines at seed 0) first: the controlled runs read them.
  sweep --methods=sdst_rigl,static --strategies=strong --densities=$dg --seeds=0 --parallel=2
  for seed in $SEEDS; do
    sweep --methods=adapt_relax --densities=$dg --seeds=$seed --d_max=1.0 $(ref sdst_rigl $dg) &
    sweep --methods=dda --densities=$dg --seeds=$seed --d_max=1.0 $(ref static $dg) &
    wait
    sweep --methods=adapt_strict --densities=$dg --seeds=$seed --d_max=0.5 $(ref sdst_rigl $dg) &
    sweep --methods=static,sdst_rigl --strategies=balance,strong --densities=$dg --seeds=$seed &
    wait
    sweep --methods=dense --densities=1.0 --seeds=$seed  # once per seed (finished runs are skipped)
  done
done
