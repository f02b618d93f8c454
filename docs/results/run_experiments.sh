#!/usr/bin/env bash
# The CPU-scale experiments of docs/results.md, in priority order. Every sweep is resumable:
# rerun this script to finish what an interruption left. From the repository root:
#   nohup nice -n 10 bash docs/results/run_experiments.sh > runs/sweeps/experiments.log 2>&1 &
set -uo pipefail
SHORT=(--config=configs/biggan_tiny.py --parallel=2 --set=train.sample_every=100000
  --set=eval.cache_dir=$PWD/runs/sweeps/eval_cache)
# The digits config with its schedules scaled to the shortened runs: D checks and G drop/grow
# every T/10 iterations, BR measured every 5 over a T/10-iteration window, scores every T/2.
scaled() {  # $1 = iterations T
  local k=$(($1 / 10))
  echo --set=train.num_iters=$1 --set=sparse.g_update_every=$k --set=sparse.d_adjust_every=$k \
    --set=balance.window=$k --set=balance.br_every=5 --set=train.ckpt_every=$(($1 / 2)) \
    --set=eval.every=$(($1 / 2))
}
sweep() { python -m adapt_jax.sweep "${SHORT[@]}" "$@"; }

# (a) Fig. 2: STATIC at d_G = 10%, d_D = 10% (balance) and 30/50/100% (strong, d_D = d_max).
sweep $(scaled 500) --workdir=runs/sweeps/fig2 --methods=static --strategies=balance,strong \
  --densities=0.1 --d_max=0.3,0.5,1.0 --seeds=0

# (c) Tables 1-3: relaxed baselines and ADAPT_relax (d_max = 1), ADAPT_strict (d_max = 0.5).
tables() {  # $1 = seed
  sweep $(scaled 400) --workdir=runs/sweeps/tables --densities=0.1,0.3 --seeds="$1" \
    --methods=static,sdst_rigl,adapt_relax --strategies=balance,strong --d_max=1.0
  sweep $(scaled 400) --workdir=runs/sweeps/tables --densities=0.1,0.3 --seeds="$1" \
    --methods=adapt_strict --d_max=0.5
}
tables 0
# (b) DDA: static G, BR-controlled D (band [0.45, 0.55] of the digits config).
sweep $(scaled 400) --workdir=runs/sweeps/dda --methods=dda --densities=0.1,0.3 --d_max=1.0 \
  --seeds=0,1,2
tables 1
tables 2
# Dense reference for the tables (d_G = d_D = 100%).
sweep $(scaled 400) --workdir=runs/sweeps/tables --densities=1.0 --seeds=0,1,2 --methods=dense
# (b') The controller with a band where this model's BR lives, and the robust reduction.
sweep $(scaled 400) --workdir=runs/sweeps/band --methods=dda,adapt_relax --densities=0.1,0.3 \
  --d_max=1.0 --seeds=0 --set=balance.lower=0.02 --set=balance.upper=0.06 \
  --set=balance.reduce=ratio_of_means
# (c') 2000-iteration runs at d_G = 10%: schedules every 200, BR every 10, score every 500;
# seed 0 of every method first, then seeds 1 and 2.
LONG=(--set=train.num_iters=2000 --set=sparse.g_update_every=200 --set=sparse.d_adjust_every=200
  --set=balance.window=200 --set=balance.br_every=10 --set=train.ckpt_every=500
  --set=eval.every=500)
long() {  # $1 = seeds
  sweep "${LONG[@]}" --workdir=runs/sweeps/long --densities=0.1 --seeds="$1" \
    --methods=static,sdst_rigl,adapt_relax --strategies=balance,strong --d_max=1.0
  sweep "${LONG[@]}" --workdir=runs/sweeps/long --densities=0.1 --seeds="$1" \
    --methods=adapt_strict --d_max=0.5
  sweep "${LONG[@]}" --workdir=runs/sweeps/long --densities=1.0 --seeds="$1" --methods=dense
}
long 0
long 1,2
