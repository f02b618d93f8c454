"""Host-side overhead of `Trainer.iteration()`: syncs, scalar uploads, data pipeline, dispatch.

Checks and timings (tiny config, adapt_relax; `--config full` for the SNGAN sizes):
1. Syncs: device->host fetches counted per kind of iteration (plain, BR-measuring, G event,
   D event) with the adapt_jax line that caused them (see HostFetches).
2. Donation: after a step, the donated input state's buffers must be deleted (reused).
3. Dispatch vs. compute: the time `iteration()` takes to return (async dispatch) against the
   time until its results are ready; if they are close, the loop is host-bound.
4. Host pieces per iteration, each timed alone (medians): BatchIterator.next(), to_global(),
   the schedule scalars (`jnp.int32(i)` etc., n_critic + 4 uploads per iteration), FLOPs
   bookkeeping, and a step call's dispatch.

Usage: python benchmarks/host_overhead.py [--config tiny] [--rounds 7] [--iters 20]
"""

from __future__ import annotations

import argparse
import collections
import time
import traceback

import _bench
import jax
import jax.numpy as jnp
import numpy as np

from adapt_jax import data, sparse


def _median_us(fn, n: int = 200) -> float:
    fn()
    ts = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - start)
    return 1e6 * _bench.median(ts)


class HostFetches:
    """Counts device->host fetches by wrapping `ArrayImpl._value`, through which float(),
    int(), np.asarray() and jax.device_get() of a jax.Array go. (jax.transfer_guard does not
    fire on the CPU backend, where device buffers are host memory.) Records the first
    adapt_jax frame of each fetch."""

    def __init__(self):
        from jax._src import array

        self._cls = array.ArrayImpl
        self._orig = array.ArrayImpl.__dict__["_value"]
        self.where: list[str] = []

    def __enter__(self):
        orig, where = self._orig, self.where

        def getter(arr):
            if arr._npy_value is None:  # a real fetch, not a cached host copy
                for frame in traceback.extract_stack()[::-1]:
                    if "/adapt_jax/" in frame.filename:
                        where.append(f"{frame.filename.split('/adapt_jax/')[-1]}:"
                                     f"{frame.lineno} {frame.name}")
                        break
                else:
                    where.append("?")
            return orig.fget(arr)

        self._cls._value = property(getter)
        return self

    def __exit__(self, *exc):
        self._cls._value = self._orig


def sync_checks(tr) -> dict:
    """Fetches per iteration kind: plain, BR-measuring, G event, D event."""
    sched = tr.components.schedule
    kinds = collections.defaultdict(lambda: {"iterations": 0, "fetches": 0, "where": set()})
    target = {"plain", "br", "g_event", "d_event"}
    while target - {k for k, v in kinds.items() if v["iterations"]} and tr.t < 2000:
        t = tr.t + 1
        kind = ("d_event" if sched.d_event(t) else "g_event" if sched.g_event(t)
                else "br" if sched.measure_br(t) else "plain")
        if kind in kinds and kinds[kind]["iterations"] >= 3:
            tr.iteration()
            continue
        with HostFetches() as fetches:
            tr.iteration()
        k = kinds[kind]
        k["iterations"] += 1
        k["fetches"] += len(fetches.where)
        k["where"] |= set(fetches.where)
    return {k: {**v, "where": sorted(v["where"]),
                "fetches_per_iteration": v["fetches"] / max(1, v["iterations"])}
            for k, v in kinds.items()}


def donation_check(tr) -> dict:
    reals, labels = tr.next_batch()
    old = tr.state
    tr.state, _ = tr.components.steps.d_step(old, reals, labels, jnp.int32(0))
    _bench.block(tr.state)
    leaves = jax.tree.leaves(old)
    deleted = sum(1 for x in leaves if x.is_deleted())
    return {"state_leaves": len(leaves), "deleted_after_d_step": deleted}


def dispatch_vs_compute(tr, iters: int, rounds: int) -> dict:
    disp, total = [], []
    for _ in range(rounds):
        _bench.block(tr.state)
        start = time.perf_counter()
        for _ in range(iters):
            tr.iteration()
        disp.append((time.perf_counter() - start) / iters)
        _bench.block(tr.state)
        total.append((time.perf_counter() - start) / iters)
    return {"dispatch_s_per_iter": _bench.median(disp), "total_s_per_iter": _bench.median(total),
            "dispatch_fraction": _bench.median(disp) / _bench.median(total)}


def host_pieces(tr) -> dict:
    c = tr.config
    it = tr._batches(position=0)
    images, labels = it.next()
    mesh = tr.components.mesh
    reals, lab = tr.next_batch()
    n = c.train.n_critic
    steps = tr.components.steps
    scal = {"int": jnp.int32(0)}

    def scalars():
        return ([jnp.int32(i) for i in range(n)] + [jnp.int32(n), jnp.bool_(False),
                                                    jnp.bool_(False), jnp.float32(0.1)])

    cached = [jax.device_put(np.int32(i), tr.components.replicated) for i in range(n + 1)]

    def dispatch_only():
        # one D step call on cached inputs; the result is awaited outside the timing
        tr.state, _ = steps.d_step(tr.state, reals, lab, scal["int"])

    pieces = {
        "batch_iterator_next": _median_us(it.next),
        "to_global(images)": _median_us(lambda: data.to_global(mesh, images)),
        "to_global(labels)": _median_us(lambda: data.to_global(mesh, labels))
        if tr.components.gan.num_classes else 0.0,
        f"schedule_scalars_x{n + 4}": _median_us(scalars),
        f"cached_scalars_lookup_x{n + 4}": _median_us(lambda: cached[0] and cached[-1]),
        "drop_fraction_schedule": _median_us(lambda: sparse.drop_fraction_schedule(
            c.sparse.g_drop_schedule, c.sparse.g_drop_fraction, tr.components.schedule.total)(7)),
        "flops_iteration_bookkeeping": _median_us(lambda: tr.host.flops.iteration(
            tr.host.flops.t + 1, None, None, br_measured=False, g_event=False, d_event=False)),
    }
    _bench.block(tr.state)
    ts = []
    for _ in range(20):
        start = time.perf_counter()
        dispatch_only()
        ts.append(time.perf_counter() - start)
        _bench.block(tr.state)
    pieces["d_step_call_dispatch"] = 1e6 * _bench.median(ts)
    return pieces


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="tiny", choices=["tiny", "full"])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--iters", type=int, default=20)
    args = parser.parse_args()
    sampler = _bench.LoadSampler()
    result = {"benchmark": "host_overhead", **_bench.environment(), "config": args.config}
    if args.config == "tiny":
        # events every few iterations so that every kind is reached quickly
        tr = _bench.make_trainer("tiny", "adapt_relax", **{
            "sparse.g_update_every": 10, "sparse.d_adjust_every": 20, "balance.window": 10})
        result["sync"] = sync_checks(tr)
        for kind, v in result["sync"].items():
            print(f"syncs, {kind} iterations: {v['fetches_per_iteration']:.1f} fetches each "
                  f"({', '.join(v['where']) or 'none'})", flush=True)
    tr = _bench.make_trainer(args.config, "adapt_relax")
    tr.iteration()
    _bench.block(tr.state)
    result["donation"] = donation_check(tr)
    print(f"donation: {result['donation']}", flush=True)
    iters = args.iters if args.config == "tiny" else 1
    result["dispatch"] = dispatch_vs_compute(tr, iters, 3 if args.config == "tiny" else 1)
    print(f"dispatch: {result['dispatch']}", flush=True)
    result["host_pieces_us"] = host_pieces(tr)
    n = tr.config.train.n_critic
    per_iter_host = (n * (result["host_pieces_us"]["batch_iterator_next"]
                          + result["host_pieces_us"]["to_global(images)"]
                          + result["host_pieces_us"]["to_global(labels)"]))
    result["data_pipeline_us_per_iter"] = per_iter_host
    result["data_pipeline_fraction_of_iteration"] = (
        1e-6 * per_iter_host / result["dispatch"]["total_s_per_iter"])
    print("host pieces (us): " + ", ".join(f"{k} {v:.1f}"
                                          for k, v in result["host_pieces_us"].items()))
    print(f"data pipeline per iteration: {per_iter_host:.0f} us = "
          f"{100 * result['data_pipeline_fraction_of_iteration']:.2f}% of an iteration")
    result["load_average"] = sampler.stop()
    print(f"load average (1 min) during the run: {result['load_average']}")
    _bench.write(f"host_overhead_{args.config}", result)


if __name__ == "__main__":
    main()
