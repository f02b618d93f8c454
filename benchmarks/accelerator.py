"""The accelerator check: speed, memory, data parallelism and BR fidelity on any backend.

One command to run whenever a GPU or TPU is at hand (it runs on CPU too, which is how it is
kept working between such occasions):

    python benchmarks/accelerator.py                  # tiny + SNGAN-CIFAR-10 on every local device
    python benchmarks/accelerator.py --configs=tiny   # CPU: the full config takes ~25 s/iteration

Per config (the method of the config, ADAPT_relax by default): iterations/s on all local devices
(median of timed rounds after compilation), peak device memory, and the per-device batch of every
convolution of the compiled D and G steps (data parallelism is real only if each is
global batch / devices). Then BR, the quantity ADAPT steers by, over `--br_iters` iterations of
the tiny config on this backend against the same run on CPU (a child process): TPUs and recent
GPUs round float32 matmuls to bfloat16/TF32, and BR is a small difference of two forwards, so
this is where an accelerator could bias the controller. Writes
`benchmarks/results/accelerator_<backend>.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

import _bench
import jax
import jax.numpy as jnp
import numpy as np


def per_device_batches(tr) -> dict[str, dict[int, int]]:
    """{step: {per-device conv batch: count}} of the compiled D and G steps."""
    from adapt_jax.tools import hlo

    x, y = tr.next_batch()
    i, yes = jnp.int32(1), jnp.bool_(True)
    steps = tr.components.steps
    lowered = {"d_step": steps.d_step.lower(tr.state, x, y, i),
               "g_step": steps.g_step.lower(tr.state, x, y, i, yes, yes, jnp.float32(0.1))}
    return {k: hlo.batch_sizes(v.compile().as_text()) for k, v in lowered.items()}


def peak_memory_bytes() -> int | None:
    """Largest peak allocation over the local devices (None where the backend keeps no stats,
    as the CPU does)."""
    peaks = [(d.memory_stats() or {}).get("peak_bytes_in_use") for d in jax.local_devices()]
    peaks = [p for p in peaks if p is not None]
    return max(peaks) if peaks else None


def speed(which: str, iters: int, rounds: int) -> dict:
    tr = _bench.make_trainer(which, "adapt_relax")
    start = time.perf_counter()
    tr.iteration()
    _bench.block(tr.state)
    first = time.perf_counter() - start
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(iters):
            tr.iteration()
        _bench.block(tr.state)
        samples.append((time.perf_counter() - start) / iters)
    c = tr.config
    return {"config": which, "method": c.method, "batch_d": c.train.batch_d,
            "batch_g": c.train.batch_g, "n_critic": c.train.n_critic,
            "first_iteration_s": first, "s_per_iter": _bench.median(samples),
            "iters_per_s": 1.0 / _bench.median(samples), "rounds": samples,
            "peak_memory_bytes": peak_memory_bytes(),
            "per_device_conv_batches": per_device_batches(tr)}


def br_run(iters: int) -> dict:
    """Every BR measurement of the first `iters` iterations of the tiny config (the window
    spans the whole run, so none is dropped; no D check falls inside 200 iterations)."""
    tr = _bench.make_trainer("tiny", "adapt_relax", **{"balance.window": iters})
    for _ in range(iters):
        tr.iteration()
    tr.flush_br()
    items = list(tr.host.window.items)
    return {"backend": jax.default_backend(), "t": [m.t for m in items],
            "br": [m.ratio() for m in items], "fake_post_minus_pre":
            [m.fake_post - m.fake_pre for m in items]}


def cpu_reference(iters: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "br.json")
        env = dict(os.environ, JAX_PLATFORMS="cpu")
        subprocess.run([sys.executable, __file__, f"--br_only={out}", f"--br_iters={iters}"],
                       env=env, check=True)
        with open(out) as f:
            return json.load(f)


def compare(here: dict, cpu: dict) -> dict:
    a, b = np.asarray(here["br"]), np.asarray(cpu["br"])
    if here["t"] != cpu["t"]:
        return {"comparable": False, "why": "different measurement iterations"}
    diff = np.abs(a - b)
    return {"comparable": True, "measurements": int(a.size),
            "mean_br_here": float(a.mean()), "mean_br_cpu": float(b.mean()),
            "mean_difference": float((a - b).mean()), "max_abs_difference": float(diff.max()),
            "median_abs_difference": float(np.median(diff)),
            "correlation": float(np.corrcoef(a, b)[0, 1]) if a.size > 1 else None}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--configs", default="tiny,full", help="tiny and/or full (SNGAN-CIFAR-10)")
    p.add_argument("--iters", type=int, default=20, help="iterations per timed round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--br_iters", type=int, default=200)
    p.add_argument("--br_only", default="", help=argparse.SUPPRESS)  # the CPU child
    p.add_argument("--out", default="")
    p.add_argument("--compare", action="store_true",
                   help="compare with a CPU child run even on CPU (checks the check itself)")
    a = p.parse_args()
    if a.br_only:
        with open(a.br_only, "w") as f:
            json.dump(br_run(a.br_iters), f)
        return
    backend = jax.default_backend()
    result = {"environment": _bench.environment(),
              "local_devices": [str(d) for d in jax.local_devices()], "speed": []}
    for which in a.configs.split(","):
        row = speed(which, a.iters, a.rounds)
        result["speed"].append(row)
        mem = row["peak_memory_bytes"]
        print(f"{which:>5}: {row['iters_per_s']:.2f} it/s ({row['s_per_iter'] * 1e3:.1f} ms), "
              f"first iteration {row['first_iteration_s']:.1f} s, peak memory "
              f"{'n/a' if mem is None else f'{mem / 2**30:.2f} GiB'}, per-device conv batches "
              f"{row['per_device_conv_batches']}", flush=True)
    here = br_run(a.br_iters)
    result["br"] = {"here": here}
    if backend != "cpu" or a.compare:
        result["br"]["cpu"] = cpu_reference(a.br_iters)
        result["br"]["comparison"] = compare(here, result["br"]["cpu"])
        print("BR vs CPU:", json.dumps(result["br"]["comparison"]))
    else:
        print(f"BR: {len(here['br'])} measurements, mean {np.mean(here['br']):.4f} "
              "(this is the CPU reference itself)")
    _bench.write(f"accelerator_{backend}", result,
                 out=pathlib.Path(a.out) if a.out else None)


if __name__ == "__main__":
    main()
