"""Training-iteration cost per method, the amortised cost of ADAPT's balance control, XLA
compilations and the train-state memory, on the tiny config and the paper's SNGAN-CIFAR-10 config.

Sections (each printed as a table and stored in benchmarks/results/train_step.json):

1. iterations/s of Trainer.iteration() for dense, static, sdst_rigl, adapt_relax, adapt_strict,
   interleaved round by round (the config's own schedule; the full config reads digits at 32x32
   because CIFAR-10 is not available offline: model and batch sizes are the paper's).
2. components, timed on the jitted steps with fixed inputs: D step, G step (plain / + BR terms /
   + G mask update), D resize (d_mask_update) and the host work of a D event (BR flush, decide).
   From these, ADAPT's amortised cost per iteration at the paper's schedule (BR every 10, G
   update every 500, D adjust every 1000) against STATIC (no events; with and without BR) and
   the cost of one G mask update relative to the 500 iterations it serves.
3. compile time of each jitted function (trace+lower and XLA compile, on fresh jit wrappers)
   and its compiled temp memory.
4. compilations during a tiny adapt_relax run with >= 10 D density changes (band set so that
   the controller always asks for more density), after a warm-up that fires every event once:
   jax.monitoring backend-compile events and `_cache_size()` of the jitted steps.
5. train-state bytes by part (params, masks, optimizer, EMA, SN/BN stats) against the dense
   equivalent (same state without masks).

Usage: python benchmarks/train_step.py [--configs tiny,full] [--rounds 5] [--full-iters 1]
"""

from __future__ import annotations

import argparse
import collections
import os
import pathlib
import time

import _bench
import jax
import jax.numpy as jnp

from adapt_jax import sparse

METHODS = ("dense", "static", "sdst_rigl", "adapt_relax", "adapt_strict")
PAPER = {"br_every": 10, "g_every": 500, "d_every": 1000}


class CompileLog:
    """Every XLA backend compile (jax.monitoring), with the jitted function's name."""

    EVENT = "/jax/core/compile/backend_compile_duration"

    def __init__(self):
        self.records: list[tuple[str, float]] = []
        jax.monitoring.register_event_duration_secs_listener(self._listen)

    def _listen(self, event: str, duration: float, **kw) -> None:
        if event == self.EVENT:
            self.records.append((kw.get("fun_name", "?"), duration))

    def since(self, mark: int) -> list[tuple[str, float]]:
        return self.records[mark:]


COMPILES = CompileLog()


# -- 1. iterations per method ----------------------------------------------------------------
def iteration_rates(which: str, rounds: int, iters: int, trainers: dict) -> list[dict]:
    for method, tr in trainers.items():  # warm-up: compiles d_step and g_step
        start = time.perf_counter()
        tr.iteration()
        _bench.block(tr.state)
        print(f"[{which}] {method}: first iteration {time.perf_counter() - start:.1f}s",
              flush=True)
    samples = collections.defaultdict(list)
    for r in range(rounds):
        for method, tr in trainers.items():
            def run(tr=tr):
                for _ in range(iters):
                    tr.iteration()
                return tr.state
            samples[method].append(_bench.timed(run) / iters)
        print(f"[{which}] round {r + 1}/{rounds} (load {os.getloadavg()[0]:.1f}): " + ", ".join(
            f"{m} {s[-1]:.3f}s" for m, s in samples.items()), flush=True)
    static = _bench.median(samples["static"]) if "static" in samples else None
    rows = []
    for method, s in samples.items():
        t = _bench.median(s)
        rows.append({"method": method, "s_per_iter": t, "iters_per_s": 1.0 / t,
                     "x_static": t / static if static else None, "samples": s,
                     "t_end": trainers[method].t})
    return rows


# -- 2. components and the amortised ADAPT overhead ------------------------------------------
def components(tr, rounds: int) -> dict[str, float]:
    """Median seconds of each jitted step on tr.state (which they advance), interleaved."""
    steps, c = tr.components.steps, tr.config
    n = c.train.n_critic
    reals, labels = tr.next_batch()
    count = int(sparse.count_active(tr.state.d.masks))
    delta = max(1, round(c.sparse.delta_d * tr.maskable("d")))
    drop = jnp.float32(0.3)

    def g(measure: bool, update: bool):
        def call():
            tr.state, m = steps.g_step(tr.state, reals, labels, jnp.int32(n),
                                          jnp.bool_(measure), jnp.bool_(update), drop)
            return tr.state
        return call

    def d():
        tr.state, _ = steps.d_step(tr.state, reals, labels, jnp.int32(0))
        return tr.state

    flip = [1]

    def d_resize():
        flip[0] = -flip[0]  # up and down: the density stays where it is
        tr.state = steps.d_mask_update(tr.state, reals, labels, jnp.int32(n + 1),
                                          jnp.int32(count + flip[0] * delta), jnp.float32(0.0))
        return tr.state

    def d_event_host():
        # what Trainer._d_event does on the host besides the device resize
        tr.host.diagnostics.active("d")
        tr.flush_br()
        if tr.host.controller is not None:
            tr.host.controller.decide(tr.t)
        return None

    def g_event_host():
        # what a G event adds on the host: one read of the masks, then the FLOPs bookkeeping
        tr.host.diagnostics.observe(tr.t, "g", tr.state.g.masks, event=True)
        return None

    ops = {"d_step": d, "g_step": g(False, False), "g_step_br": g(True, False),
           "g_step_mask_update": g(False, True), "d_resize": d_resize,
           "d_event_host": d_event_host, "g_event_host": g_event_host}
    for fn in ops.values():  # compile every branch/function before timing
        _bench.block(fn())
    samples = collections.defaultdict(list)
    for _ in range(rounds):
        for name, fn in ops.items():
            samples[name].append(_bench.timed(fn))
    out = {name: _bench.median(s) for name, s in samples.items()}
    out["n_critic"] = n
    return out


def amortised(comp: dict, static_comp: dict, sched: dict) -> dict[str, float]:
    n = comp["n_critic"]
    base = n * comp["d_step"] + comp["g_step"]
    br = max(0.0, comp["g_step_br"] - comp["g_step"])
    g_upd = max(0.0, comp["g_step_mask_update"] - comp["g_step"]) + comp["g_event_host"]
    d_res = comp["d_resize"] + comp["d_event_host"]
    adapt = base + br / sched["br_every"] + g_upd / sched["g_every"] + d_res / sched["d_every"]
    static = n * static_comp["d_step"] + static_comp["g_step"]
    static_br = static + max(0.0, static_comp["g_step_br"] - static_comp["g_step"]) / sched[
        "br_every"]
    return {
        "schedule": sched,
        "base_iteration_s": base,
        "br_extra_s": br,
        "g_mask_update_extra_s": g_upd,
        "d_resize_s": d_res,
        "adapt_amortised_s": adapt,
        "static_s": static,
        "static_with_br_s": static_br,
        "adapt_over_static": adapt / static,
        "adapt_over_static_with_br": adapt / static_br,
        "g_update_fraction_of_interval": g_upd / (sched["g_every"] * base),
        "d_resize_fraction_of_interval": d_res / (sched["d_every"] * base),
    }


# -- 3. compile times ------------------------------------------------------------------------
def compile_times(tr) -> list[dict]:
    """AOT trace+lower and compile of fresh jit wrappers of each step (no cache hits)."""
    s, c = tr.components.gan_steps, tr.config
    reals, labels = tr.next_batch()
    n = c.train.n_critic
    cases = {
        "d_step": (s.d_step, (tr.state, reals, labels, jnp.int32(0))),
        "g_step": (s.g_step, (tr.state, reals, labels, jnp.int32(n), jnp.bool_(False),
                              jnp.bool_(False), jnp.float32(0.0))),
        "d_mask_update": (s.d_mask_update, (tr.state, reals, labels, jnp.int32(n + 1),
                                            jnp.int32(1000), jnp.float32(0.0))),
        "g_prune": (s.g_prune, (tr.state, jnp.int32(4), jnp.int32(1000))),
    }
    rows = []
    for name, (fn, args) in cases.items():
        wrapper = jax.jit(lambda *a, fn=fn: fn(*a), donate_argnums=0)
        start = time.perf_counter()
        lowered = wrapper.lower(*args)
        t_lower = time.perf_counter() - start
        start = time.perf_counter()
        compiled = lowered.compile()
        t_compile = time.perf_counter() - start
        mem = compiled.memory_analysis()
        rows.append({"function": name, "trace_lower_s": t_lower, "compile_s": t_compile,
                     "temp_mb": getattr(mem, "temp_size_in_bytes", 0) / 2**20,
                     "argument_mb": getattr(mem, "argument_size_in_bytes", 0) / 2**20})
    return rows


# -- 4. compilations with density changes ----------------------------------------------------
def compile_count_run(changes: int = 12) -> dict:
    """Tiny adapt_relax: D adjusted every 2 iterations with a band BR always exceeds (every
    decision is 'increase', delta_d 0.02), G updated every 2, BR every iteration."""
    tr = _bench.make_trainer("tiny", "adapt_relax", **{
        "sparse.d_adjust_every": 2, "sparse.g_update_every": 2, "sparse.delta_d": 0.02,
        "balance.br_every": 1, "balance.window": 2, "balance.lower": -1e9,
        "balance.upper": -1e8, "train.num_iters": 1000})

    def density():
        return float(sparse.count_active(tr.state.d.masks)) / tr.maskable("d")

    # warm-up: until one D density change and one G update have happened
    densities = [density()]
    while len(set(densities)) < 2 or tr.t < 4:
        tr.iteration()
        densities.append(density())
    _bench.block(tr.state)
    mark = len(COMPILES.records)
    sizes_before = {k: f._cache_size() for k, f in tr.components.steps.items()}
    d0 = densities[-1]
    start_t, n_changes, seen = tr.t, 0, [d0]
    while n_changes < changes and tr.t < 400:
        tr.iteration()
        d = density()
        if d != seen[-1]:
            n_changes += 1
        seen.append(d)
    _bench.block(tr.state)
    new = COMPILES.since(mark)
    return {
        "warmup_iterations": start_t,
        "measured_iterations": tr.t - start_t,
        "density_changes": n_changes,
        "densities": [round(x, 4) for x in sorted(set(seen))],
        "g_mask_updates": sum(1 for t in range(start_t + 1, tr.t + 1)
                              if tr.components.schedule.g_event(t)),
        "new_compilations": len(new),
        "new_compilation_functions": sorted({f for f, _ in new}),
        "cache_size_before": sizes_before,
        "cache_size_after": {k: f._cache_size() for k, f in tr.components.steps.items()},
        "warmup_compilations": [(f, round(s, 3)) for f, s in COMPILES.records[:mark]],
    }


# -- 5. memory ---------------------------------------------------------------------------------
def state_bytes(tr) -> dict:
    st = tr.state
    parts = {
        "g.params": st.g.params, "g.masks": st.g.masks, "g.opt_state": st.g.opt_state,
        "g.stats (BN/SN)": st.g.stats, "ema_params": st.ema_params,
        "d.params": st.d.params, "d.masks": st.d.masks, "d.opt_state": st.d.opt_state,
        "d.stats (SN)": st.d.stats, "step+rng": (st.step, st.rng),
    }
    out = {k: int(sum(x.nbytes for x in jax.tree.leaves(v))) for k, v in parts.items()}
    mask_dtypes = {str(x.dtype) for x in jax.tree.leaves((st.g.masks, st.d.masks))}
    total = sum(out.values())
    dense = total - out["g.masks"] - out["d.masks"]
    return {"bytes": out, "total_bytes": total, "dense_equivalent_bytes": dense,
            "ratio_to_dense": total / dense, "mask_dtypes": sorted(mask_dtypes),
            "g_maskable": tr.maskable("g"), "d_maskable": tr.maskable("d")}


# -- driver ------------------------------------------------------------------------------------
def run_config(which: str, rounds: int, iters: int, comp_rounds: int) -> dict:
    trainers = {}
    for m in METHODS:
        start = time.perf_counter()
        trainers[m] = _bench.make_trainer(which, m)
        print(f"[{which}] built {m} in {time.perf_counter() - start:.1f}s", flush=True)
    res = {"config": which, "model": trainers["static"].config.model.name,
           "own_schedule": {"br_every": trainers["adapt_relax"].config.balance.br_every,
                            "g_every": trainers["adapt_relax"].config.sparse.g_update_every,
                            "d_every": trainers["adapt_relax"].config.sparse.d_adjust_every}}
    res["iterations"] = iteration_rates(which, rounds, iters, trainers)
    comps = {}
    for m in ("static", "adapt_relax"):
        comps[m] = components(trainers[m], comp_rounds)
        print(f"[{which}] components {m}: " + ", ".join(
            f"{k} {v:.4f}" for k, v in comps[m].items()), flush=True)
    res["components"] = comps
    res["amortised_paper_schedule"] = amortised(comps["adapt_relax"], comps["static"], PAPER)
    res["amortised_own_schedule"] = amortised(comps["adapt_relax"], comps["static"],
                                              res["own_schedule"])
    res["compile_times"] = compile_times(trainers["adapt_relax"])
    res["memory"] = {m: state_bytes(trainers[m]) for m in ("dense", "static", "adapt_relax")}
    return res


def print_report(result: dict) -> None:
    for which, res in result["configs"].items():
        print(f"\n== {which} ({res['model']}) ==")
        print(_bench.table(res["iterations"], [
            ("method", "method", ""), ("s_per_iter", "s/iter", ".4f"),
            ("iters_per_s", "iter/s", ".3f"), ("x_static", "x static", ".3f")]))
        a = res["amortised_paper_schedule"]
        print("components (s): " + ", ".join(
            f"{k} {v:.4f}" for k, v in res["components"]["adapt_relax"].items()))
        print(f"paper schedule {a['schedule']}: ADAPT amortised {a['adapt_amortised_s']:.4f}s vs"
              f" STATIC {a['static_s']:.4f}s -> x{a['adapt_over_static']:.4f} "
              f"(vs STATIC that also measures BR: x{a['adapt_over_static_with_br']:.4f}); "
              f"one G mask update = {100 * a['g_update_fraction_of_interval']:.4f}% of its "
              f"interval; one D resize = {100 * a['d_resize_fraction_of_interval']:.4f}%")
        print(_bench.table(res["compile_times"], [
            ("function", "function", ""), ("trace_lower_s", "trace+lower s", ".2f"),
            ("compile_s", "compile s", ".2f"), ("temp_mb", "temp MB", ".1f"),
            ("argument_mb", "args MB", ".1f")]))
        rows = []
        for m, mem in res["memory"].items():
            rows.append({"method": m, **{k: v / 2**20 for k, v in mem["bytes"].items()},
                         "total": mem["total_bytes"] / 2**20,
                         "ratio": mem["ratio_to_dense"]})
        cols = [("method", "method", "")] + [(k, k.split(" ")[0], ".2f")
                                             for k in res["memory"]["static"]["bytes"]]
        print("train state (MiB):")
        print(_bench.table(rows, cols + [("total", "total", ".2f"),
                                         ("ratio", "x dense", ".3f")]))
    if "compile_count" in result:
        c = result["compile_count"]
        print(f"\ncompilations after warm-up ({c['warmup_iterations']} iterations): "
              f"{c['new_compilations']} over {c['measured_iterations']} iterations with "
              f"{c['density_changes']} D density changes and {c['g_mask_updates']} G mask "
              f"updates; jitted cache sizes {c['cache_size_before']} -> {c['cache_size_after']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default="tiny,full")
    parser.add_argument("--rounds", type=int, default=5, help="tiny: timed rounds")
    parser.add_argument("--iters", type=int, default=10, help="tiny: iterations per round")
    parser.add_argument("--full-rounds", type=int, default=2)
    parser.add_argument("--full-iters", type=int, default=1)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    sampler = _bench.LoadSampler()
    result = {"benchmark": "train_step", **_bench.environment(), "configs": {}}
    result["compile_count"] = compile_count_run()
    for which in args.configs.split(","):
        if which == "tiny":
            result["configs"][which] = run_config(which, args.rounds, args.iters, 7)
        else:
            result["configs"][which] = run_config(which, args.full_rounds, args.full_iters, 2)
    result["load_average"] = sampler.stop()
    print_report(result)
    print(f"load average (1 min) during the run: {result['load_average']}")
    _bench.write("train_step", result,
                 out=None if args.out is None else pathlib.Path(args.out))


if __name__ == "__main__":
    main()
