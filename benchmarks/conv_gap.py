"""The CPU conv gap, layer by layer: forward, input gradient (dx) and weight gradient (dw) of
every distinct conv of a config's G and D, per implementation.

Variants (all float32, the layer's real batch: G at batch_g, D at 2*batch_d):
- xla:      lax.conv_general_dilated in NHWC/HWIO (flax's default; the implementation before).
- nchw:     the same conv with NCHW/OIHW dimension numbers on data already in that layout
            (the layout hypothesis, without even paying the transposes).
- cpu_auto: what `adapt_jax.models.layers.conv` now does on CPU (1x1: matmul; large kxk: GEMM
            per kernel offset for dw; small kxk: plain).
- taps:     the per-offset-GEMM weight gradient forced on every kxk conv.
- torch2 / torch1: torch.nn.functional.conv2d and torch.nn.grad.conv2d_{input,weight} with 2 /
            1 threads (only where torch is installed).
Every round times each (shape, variant, op) once, interleaved; medians are reported. The summary
weights each shape by how often the G/D step uses it (fwd + dx + dw per layer; the first D conv
needs no dx, but it is counted for simplicity).

`--flag-sweep` reruns two representative shapes in subprocesses under XLA_FLAGS variants
(oneDNN, XNNPACK/YNNPACK conv fusions; the thunk-runtime switch no longer exists in 0.10.2).

Usage: python benchmarks/conv_gap.py [--config full|tiny] [--rounds 3] [--flag-sweep]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
import time

import _bench
import jax
import jax.numpy as jnp
import numpy as np

from adapt_jax.models.cpu_conv import ConvForms

try:
    import torch
except ImportError:  # pragma: no cover
    torch = None

FLAG_SETS = {
    "default": "",
    "onednn": "--xla_cpu_use_onednn=true",
    "onednn_conv_fusion": ("--xla_cpu_use_onednn=true "
                           "--xla_cpu_experimental_onednn_fusion_type=individual_convolution"),
    "xnn_conv_fusion": "--xla_cpu_experimental_xnn_fusion_type=individual_convolution",
    "ynn_conv_fusion": "--xla_cpu_experimental_ynn_fusion_type=individual_convolution",
    "no_xnnpack": "--xla_cpu_use_xnnpack=false",
    "fast_math": "--xla_cpu_enable_fast_math=true",
}
# (B, H, W, Cin, Cout, k): a 16x16 3x3 and a 32x32 1x1 layer of the SNGAN generator.
SWEEP_SHAPES = [(32, 16, 16, 256, 256, 3), (32, 32, 32, 256, 256, 1)]


def conv_shapes(which: str) -> dict[tuple, collections.Counter]:
    """{(B, H, W, Cin, Cout, k): Counter(net=count)} of the convs of G and D (traced, xla)."""
    cfg = _bench.load_config(which, "static")
    from adapt_jax import models

    cfg.model.conv_impl = "xla"  # every conv stays a conv_general_dilated to be found
    gan = models.create(cfg.model)
    g_vars, d_vars = jax.eval_shape(gan.init, jax.random.key(0))
    n_g, n_d = cfg.train.batch_g, 2 * cfg.train.batch_d
    z = jnp.zeros((n_g, gan.z_dim))
    yg = jnp.zeros((n_g,), jnp.int32) if gan.num_classes else None
    x = jnp.zeros((n_d, gan.resolution, gan.resolution, 3))
    yd = jnp.zeros((n_d,), jnp.int32) if gan.num_classes else None
    g_jaxpr = jax.make_jaxpr(lambda v: gan.generator.apply(
        v, z, yg, train=True, mutable=[k for k in v if k != "params"]))(g_vars)
    d_jaxpr = jax.make_jaxpr(lambda v: gan.discriminator.apply(
        v, x, yd, update_stats=False))(d_vars)
    shapes: dict[tuple, collections.Counter] = collections.defaultdict(collections.Counter)
    for net, jaxpr in (("G", g_jaxpr), ("D", d_jaxpr)):
        for eqn in _eqns(jaxpr.jaxpr):
            if eqn.primitive.name == "conv_general_dilated":
                b, h, w, c = eqn.invars[0].aval.shape
                kh, _, _, o = eqn.invars[1].aval.shape
                shapes[(b, h, w, c, o, kh)][net] += 1
    return dict(shapes)


def _eqns(jaxpr):
    for eqn in jaxpr.eqns:
        yield eqn
        for sub in jax.core.jaxprs_in_params(eqn.params):
            yield from _eqns(sub)


def _jax_ops(shape, impl: str, layout: str = "NHWC"):
    b, h, w, c, o, k = shape
    pads = ((k // 2, k // 2),) * 2
    if layout == "NCHW":
        def f(x, wt):
            return jax.lax.conv_general_dilated(x, wt, (1, 1), pads,
                                                dimension_numbers=("NCHW", "OIHW", "NCHW"))
        xs, ws, ys = (b, c, h, w), (o, c, k, k), (b, o, h, w)
    else:
        dn = jax.lax.conv_dimension_numbers((b, h, w, c), (k, k, c, o), ("NHWC", "HWIO", "NHWC"))

        def f(x, wt):
            return ConvForms(impl)(x, wt, (1, 1), "SAME", dimension_numbers=dn)
        xs, ws, ys = (b, h, w, c), (k, k, c, o), (b, h, w, o)
    fwd = jax.jit(f).lower(jax.ShapeDtypeStruct(xs, jnp.float32),
                           jax.ShapeDtypeStruct(ws, jnp.float32)).compile()
    avals = [jax.ShapeDtypeStruct(s, jnp.float32) for s in (xs, ws, ys)]
    dx = jax.jit(lambda x, wt, g: jax.vjp(lambda x_: f(x_, wt), x)[1](g)[0]).lower(
        *avals).compile()
    dw = jax.jit(lambda x, wt, g: jax.vjp(lambda w_: f(x, w_), wt)[1](g)[0]).lower(
        *avals).compile()
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal(xs, np.float32))
    wt = jnp.asarray(0.05 * rng.standard_normal(ws, np.float32))
    g = jnp.asarray(rng.standard_normal(ys, np.float32))
    return {"fwd": lambda: fwd(x, wt), "dx": lambda: dx(x, wt, g), "dw": lambda: dw(x, wt, g)}


def _torch_ops(shape, threads: int):
    b, h, w, c, o, k = shape
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(b, c, h, w, generator=gen)
    wt = 0.05 * torch.randn(o, c, k, k, generator=gen)
    g = torch.randn(b, o, h, w, generator=gen)
    p = k // 2

    def run(fn):
        def call():
            torch.set_num_threads(threads)
            with torch.no_grad():
                return fn()
        return call

    return {
        "fwd": run(lambda: torch.nn.functional.conv2d(x, wt, padding=p)),
        "dx": run(lambda: torch.nn.grad.conv2d_input(x.shape, wt, g, padding=p)),
        "dw": run(lambda: torch.nn.grad.conv2d_weight(x, wt.shape, g, padding=p)),
    }


def measure(shapes: list[tuple], variants: list[str], rounds: int) -> dict:
    ops = {}
    for shape in shapes:
        for v in variants:
            if v.startswith("torch"):
                ops[(shape, v)] = _torch_ops(shape, int(v[-1]))
            elif v == "nchw":
                ops[(shape, v)] = _jax_ops(shape, "xla", "NCHW")
            else:
                ops[(shape, v)] = _jax_ops(shape, {"taps": "matmul_grad"}.get(v, v))
            for fn in ops[(shape, v)].values():  # warm-up
                _bench.block(fn())
    samples = collections.defaultdict(list)
    for r in range(rounds):
        for (shape, v), fns in ops.items():
            for op, fn in fns.items():
                samples[(shape, v, op)].append(_bench.timed(fn))
        print(f"  round {r + 1}/{rounds} done (load {os.getloadavg()[0]:.1f})", flush=True)
    out = {}
    for (shape, v, op), ts in samples.items():
        out.setdefault(str(shape), {}).setdefault(v, {})[op] = _bench.median(ts)
    return out


def _flag_child(rounds: int) -> None:
    res = measure(SWEEP_SHAPES, ["xla", "cpu_auto"], rounds)
    print("JSON:" + json.dumps(res))


def flag_sweep(rounds: int) -> dict:
    out = {}
    for name, flags in FLAG_SETS.items():
        env = {**os.environ, "XLA_FLAGS": flags}
        proc = subprocess.run([sys.executable, __file__, "--flag-child", "--rounds", str(rounds)],
                              env=env, capture_output=True, text=True)
        line = [ln for ln in proc.stdout.splitlines() if ln.startswith("JSON:")]
        if proc.returncode or not line:
            out[name] = {"flags": flags, "error": proc.stderr[-800:]}
        else:
            out[name] = {"flags": flags, "ms": json.loads(line[0][5:]),
                         "load_average": os.getloadavg()[0]}
        print(f"  flags {name!r}: done", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="full", choices=["full", "tiny"])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--flag-sweep", action="store_true")
    parser.add_argument("--flag-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--no-torch", action="store_true")
    args = parser.parse_args()
    if args.flag_child:
        _flag_child(args.rounds)
        return
    sampler = _bench.LoadSampler()
    shapes = conv_shapes(args.config)
    variants = ["xla", "nchw", "cpu_auto", "taps"]
    if torch is not None and not args.no_torch:
        variants += ["torch2", "torch1"]
    print(f"{args.config}: {len(shapes)} distinct conv shapes, variants {variants}", flush=True)
    start = time.time()
    ms = measure(sorted(shapes), variants, args.rounds)
    rows, totals = [], collections.defaultdict(lambda: collections.defaultdict(float))
    for shape in sorted(shapes):
        b, h, w, c, o, k = shape
        gflop = 2 * b * h * w * c * o * k * k / 1e9
        m = ms[str(shape)]
        row = {"shape": f"B{b} {h}x{w} {c}->{o} k{k}",
               "uses": " ".join(f"{n}x{cnt}" for n, cnt in sorted(shapes[shape].items())),
               "gflop": gflop}
        for v in variants:
            for op in ("fwd", "dx", "dw"):
                row[f"{v}_{op}_ms"] = 1e3 * m[v][op]
            for net, cnt in shapes[shape].items():
                totals[net][v] += cnt * sum(m[v].values())
        row["xla_dw_over_fwd"] = m["xla"]["dw"] / m["xla"]["fwd"]
        row["xla_dw_over_cpu_auto_dw"] = m["xla"]["dw"] / m["cpu_auto"]["dw"]
        rows.append(row)
    cols = [("shape", "layer", ""), ("uses", "uses", ""), ("gflop", "GFLOP", ".2f"),
            ("xla_fwd_ms", "xla fwd", ".1f"), ("xla_dx_ms", "xla dx", ".1f"),
            ("xla_dw_ms", "xla dw", ".1f"), ("nchw_dw_ms", "nchw dw", ".1f"),
            ("cpu_auto_fwd_ms", "auto fwd", ".1f"), ("cpu_auto_dw_ms", "auto dw", ".1f"),
            ("taps_dw_ms", "taps dw", ".1f")]
    if "torch2" in variants:
        cols += [("torch2_fwd_ms", "t2 fwd", ".1f"), ("torch2_dw_ms", "t2 dw", ".1f"),
                 ("torch1_dw_ms", "t1 dw", ".1f")]
    print(_bench.table(rows, cols))
    print("\nsum over the layers of one forward+dx+dw pass (seconds), weighted by use count:")
    for net, per in totals.items():
        print(f"  {net}: " + ", ".join(f"{v} {t:.2f}" for v, t in per.items()))
    result = {"benchmark": "conv_gap", **_bench.environment(), "config": args.config,
              "rounds": args.rounds, "variants": variants, "rows": rows,
              "pass_seconds_by_net": {n: dict(p) for n, p in totals.items()},
              "wall_s": time.time() - start}
    if args.flag_sweep:
        print("XLA flag sweep (subprocesses) ...", flush=True)
        result["flag_sweep"] = flag_sweep(args.rounds)
        for name, r in result["flag_sweep"].items():
            if "error" in r:
                print(f"  {name}: ERROR {r['error'][-200:]}")
                continue
            cells = []
            for shape, per in r["ms"].items():
                cells.append(f"{shape}: xla fwd {1e3 * per['xla']['fwd']:.0f} ms, "
                             f"dw {1e3 * per['xla']['dw']:.0f} ms; cpu_auto dw "
                             f"{1e3 * per['cpu_auto']['dw']:.0f} ms")
            print(f"  {name:20s} " + " | ".join(cells))
    result["load_average"] = sampler.stop()
    print(f"load average (1 min): {result['load_average']}")
    _bench.write(f"conv_gap_{args.config}", result)


if __name__ == "__main__":
    main()
