"""The fused resampling convs against the literal ops they replace, layer by layer.

G's up-blocks convolve an x2 nearest-upsampled input and D's down-blocks average-pool a conv's
output. `adapt_jax.models.cpu_conv.ConvForms` computes both without the full-resolution tensor:
1x1 convs at the low resolution (every backend), 3x3 convs on CPU in the sub-pixel (G: four 2x2
phase kernels) and stride-2 4x4 (D: box-filtered kernel) forms, 16 products per low-resolution
pixel instead of 36. This script finds every such conv of a config's G and D (the layer's real
batch: G at batch_g, D at 2 * batch_d), times forward + both gradients of the literal op
(upsample-then-conv / conv-then-pool, the CPU conv forms otherwise) and of the fused form,
interleaved round by round, and reports medians and the whole-network sums.

Usage: python benchmarks/resample_convs.py [--config full|tiny] [--rounds 5]
"""

from __future__ import annotations

import argparse
import collections

import _bench
import flax.linen as nn
import jax
import jax.numpy as jnp

from adapt_jax import models
from adapt_jax.models import cpu_conv
from adapt_jax.models.cpu_conv import ConvForms

FLAGS = ("upsample_input", "pool_output")
LITERAL = {
    "upsample_input": lambda conv, x, w: conv(cpu_conv.upsample(x), w),
    "pool_output": lambda conv, x, w: cpu_conv.downsample(conv(x, w)),
}


def resampling_convs(which: str) -> dict[tuple, collections.Counter]:
    """{(flag, B, H, W, Cin, Cout, k): Counter(net=count)} of the fused convs of G and D."""
    cfg = _bench.load_config(which, "static")
    gan = models.create(cfg.model)
    found: dict[tuple, collections.Counter] = collections.defaultdict(collections.Counter)

    def recorder(net: str, batch: int):
        def intercept(next_fun, args, kwargs, context):
            module = context.module
            form = getattr(module, "conv_general_dilated", None)
            if isinstance(form, ConvForms) and context.method_name == "__call__":
                for flag in FLAGS:
                    if getattr(form, flag):
                        x = args[0]
                        k = module.kernel_size[0]
                        found[(flag, batch, *x.shape[1:], module.features, k)][net] += 1
            return next_fun(*args, **kwargs)
        return intercept

    g_vars, d_vars = jax.eval_shape(gan.init, jax.random.key(0))
    n_g, n_d = cfg.train.batch_g, 2 * cfg.train.batch_d
    y_g = jnp.zeros((n_g,), jnp.int32) if gan.num_classes else None
    y_d = jnp.zeros((n_d,), jnp.int32) if gan.num_classes else None
    with nn.intercept_methods(recorder("G", n_g)):
        jax.eval_shape(lambda v: gan.generator.apply(
            v, jnp.zeros((n_g, gan.z_dim)), y_g, train=True,
            mutable=[k for k in v if k != "params"]), g_vars)
    x = jnp.zeros((n_d, gan.resolution, gan.resolution, 3))
    with nn.intercept_methods(recorder("D", n_d)):
        jax.eval_shape(lambda v: gan.discriminator.apply(v, x, y_d, update_stats=False), d_vars)
    return found


def _value_and_grads(fn):
    return jax.jit(jax.value_and_grad(lambda x, w: jnp.sum(fn(x, w) ** 2), (0, 1)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="full", choices=["full", "tiny"])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    env = _bench.environment()
    load = _bench.LoadSampler()
    impl = cpu_conv.resolve_conv_impl("auto")

    def plain_conv(x, w):
        dn = jax.lax.conv_dimension_numbers(x.shape, w.shape, ("NHWC", "HWIO", "NHWC"))
        return ConvForms(impl)(x, w, (1, 1), "SAME", dimension_numbers=dn)

    def fused_conv(flag):
        def conv(x, w):
            dn = jax.lax.conv_dimension_numbers(x.shape, w.shape, ("NHWC", "HWIO", "NHWC"))
            return ConvForms(impl, **{flag: True})(x, w, (1, 1), "SAME", dimension_numbers=dn)
        return conv

    shapes = resampling_convs(args.config)
    cases = []
    for (flag, b, h, w, c, o, k), uses in sorted(shapes.items()):
        x = jax.random.normal(jax.random.key(0), (b, h, w, c))
        kernel = 0.02 * jax.random.normal(jax.random.key(1), (k, k, c, o))
        fns = {"literal": _value_and_grads(lambda x, w, f=flag: LITERAL[f](plain_conv, x, w)),
               "fused": _value_and_grads(fused_conv(flag))}
        for fn in fns.values():
            _bench.block(fn(x, kernel))  # compile
        cases.append(dict(flag=flag, shape=f"B{b} {h}x{w} {c}->{o} k{k}",
                          uses=" ".join(f"{n}x{u}" for n, u in sorted(uses.items())),
                          count=sum(uses.values()), x=x, w=kernel, fns=fns,
                          times={n: [] for n in fns}))
    for r in range(args.rounds):
        for case in cases:
            for name, fn in case["fns"].items():
                case["times"][name].append(_bench.timed(lambda fn=fn, c=case: fn(c["x"], c["w"])))
        print(f"round {r + 1}/{args.rounds} (load {load.samples[-1]:.1f})", flush=True)
    rows, sums = [], collections.Counter()
    for case in cases:
        lit, fus = (_bench.median(case["times"][n]) for n in ("literal", "fused"))
        rows.append(dict(kind="G up" if case["flag"] == "upsample_input" else "D pool",
                         shape=case["shape"], uses=case["uses"], literal_ms=lit * 1e3,
                         fused_ms=fus * 1e3, ratio=fus / lit))
        net = "G" if case["flag"] == "upsample_input" else "D"
        sums[f"{net}_literal_s"] += lit * case["count"]
        sums[f"{net}_fused_s"] += fus * case["count"]
    print(f"\n{args.config}: fwd + dx + dw per layer, medians of {args.rounds} "
          f"({env['device']}, conv impl {impl})")
    print(_bench.table(rows, [("kind", "kind", ""), ("shape", "shape", ""),
                              ("uses", "uses", ""), ("literal_ms", "literal ms", ".1f"),
                              ("fused_ms", "fused ms", ".1f"), ("ratio", "fused/literal",
                                                               ".2f")]))
    for net in ("G", "D"):
        if sums[f"{net}_literal_s"]:
            print(f"{net} resampling convs per step: literal {sums[f'{net}_literal_s']:.3f} s, "
                  f"fused {sums[f'{net}_fused_s']:.3f} s "
                  f"({sums[f'{net}_fused_s'] / sums[f'{net}_literal_s']:.2f}x)")
    _bench.write(f"resample_convs_{args.config}",
                 {"benchmark": "resample_convs", **env, "config": args.config,
                  "rounds": args.rounds, "rows": rows, "per_step_seconds": dict(sums),
                  "load_average": load.stop()})


if __name__ == "__main__":
    main()
