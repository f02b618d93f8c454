"""Data-parallel scaling on host devices: the same training on 1, 2, 4, 8 CPU devices.

Each device count runs in a subprocess with XLA_FLAGS=--xla_force_host_platform_device_count=N
(the trainer's 1-D 'data' mesh spans all devices; the global batch is the config's, split over
the devices; params/optimizer/masks are replicated). Every child trains the same config from the
same seed for `--iters` iterations (one G mask update and one D resize included by default),
saves its final params and masks, then times more iterations. The parent reports time per
iteration and the max abs difference of params (and the number of differing mask entries)
against 1 device.

This machine has 2 cores: N host devices are N XLA partitions sharing them, so the timings show
partitioning overhead, not speed-up; the equality check is the point on CPU.

Usage: python benchmarks/scaling.py [--config tiny] [--devices 1,2,4,8] [--iters 6]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import _bench
import numpy as np

OVERRIDES = {"sparse.g_update_every": 3, "sparse.d_adjust_every": 5, "balance.br_every": 1,
             "balance.window": 2, "balance.lower": -1e9, "balance.upper": -1e8,
             "eval.batch_size": 64}  # divisible by every device count tried


def child(config: str, iters: int, timed_iters: int, rounds: int, out: str) -> None:
    import jax

    from adapt_jax import sparse

    tr = _bench.make_trainer(config, "adapt_relax", **OVERRIDES)
    start = time.perf_counter()
    tr.iteration()
    _bench.block(tr.state)
    first = time.perf_counter() - start
    for _ in range(iters - 1):
        tr.iteration()
    _bench.block(tr.state)
    flat = {}
    for prefix, tree in (("g", tr.state.g.params), ("d", tr.state.d.params),
                         ("gm", tr.state.g.masks), ("dm", tr.state.d.masks),
                         ("ema", tr.state.ema_params)):
        for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
            if leaf is not None:
                flat[prefix + jax.tree_util.keystr(path)] = np.asarray(leaf)
    np.savez(out, **flat)
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(timed_iters):
            tr.iteration()
        _bench.block(tr.state)
        samples.append((time.perf_counter() - start) / timed_iters)
    shardings = {str(tr.next_batch()[0].sharding.spec)}
    print("JSON:" + json.dumps({
        "devices": jax.device_count(), "first_iteration_s": first,
        "s_per_iter": _bench.median(samples), "samples": samples,
        "d_density": float(sparse.count_active(tr.state.d.masks)) / tr.maskable("d"),
        "batch_sharding": sorted(shardings)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="tiny", choices=["tiny", "full"])
    parser.add_argument("--devices", default="1,2,4,8")
    parser.add_argument("--iters", type=int, default=6)
    parser.add_argument("--timed-iters", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.config, args.iters, args.timed_iters, args.rounds, args.child)
        return
    sampler = _bench.LoadSampler()
    tmp = tempfile.mkdtemp(prefix="bench_scaling_")
    runs = {}
    for n in [int(x) for x in args.devices.split(",")]:
        out = os.path.join(tmp, f"params_{n}.npz")
        flags = (os.environ.get("XLA_FLAGS", "") +
                 f" --xla_force_host_platform_device_count={n}").strip()
        proc = subprocess.run(
            [sys.executable, __file__, "--config", args.config, "--iters", str(args.iters),
             "--timed-iters", str(args.timed_iters), "--rounds", str(args.rounds),
             "--child", out], env={**os.environ, "XLA_FLAGS": flags},
            capture_output=True, text=True)
        line = [ln for ln in proc.stdout.splitlines() if ln.startswith("JSON:")]
        if proc.returncode or not line:
            raise RuntimeError(f"{n} devices failed:\n{proc.stderr[-2000:]}")
        runs[n] = json.loads(line[0][5:]) | {"params_file": out}
        print(f"{n} devices: {runs[n]['s_per_iter']:.4f} s/iter "
              f"(load {os.getloadavg()[0]:.1f})", flush=True)
    ref = np.load(runs[min(runs)]["params_file"])
    rows = []
    for n, r in runs.items():
        got = np.load(r["params_file"])
        diffs = {k: float(np.max(np.abs(got[k].astype(np.float64) - ref[k])))
                 for k in ref.files if not k.startswith(("gm", "dm"))}
        mask_diff = sum(int(np.sum(got[k] != ref[k])) for k in ref.files
                        if k.startswith(("gm", "dm")))
        worst = max(diffs, key=diffs.get)
        rows.append({"devices": n, "s_per_iter": r["s_per_iter"],
                     "x_1_device": r["s_per_iter"] / runs[min(runs)]["s_per_iter"],
                     "max_abs_param_diff": diffs[worst], "worst_param": worst,
                     "mask_entries_differing": mask_diff, "d_density": r["d_density"],
                     "batch_sharding": r["batch_sharding"],
                     "first_iteration_s": r["first_iteration_s"]})
    print(_bench.table(rows, [
        ("devices", "devices", "d"), ("s_per_iter", "s/iter", ".4f"),
        ("x_1_device", "x 1 dev", ".2f"), ("max_abs_param_diff", "max|dparam|", ".2e"),
        ("mask_entries_differing", "mask diffs", "d"), ("d_density", "D density", ".3f"),
        ("first_iteration_s", "1st iter s", ".1f")]))
    result = {"benchmark": "scaling", **_bench.environment(), "config": args.config,
              "overrides": OVERRIDES, "checked_iterations": args.iters, "rows": rows,
              "load_average": sampler.stop()}
    print(f"load average (1 min) during the run: {result['load_average']}")
    _bench.write(f"scaling_{args.config}", result)


if __name__ == "__main__":
    main()
