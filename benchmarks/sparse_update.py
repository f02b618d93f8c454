"""Cost of a mask update relative to an optimizer step, on an SNGAN-CIFAR-generator-sized pytree.

Times (median after warm-up) one jitted global RigL drop_grow, one jitted resize, jitted optax
adam updates of the same ~4.3M-parameter pytree at density 0.1, and one step of the stateful
``dynamic_sparse(adam)`` without and with a mask update, then writes
benchmarks/results/sparse_update.json. Usage: ``python benchmarks/sparse_update.py [--repeats 7]``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import platform
import statistics
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax

from adapt_jax import sparse

DENSITY = 0.1
RESULTS = pathlib.Path(__file__).resolve().parent / "results" / "sparse_update.json"


def sngan_generator_like(key: jax.Array) -> dict:
    """Kernel shapes of SNGAN's 32x32 generator (Miyato et al. 2018), plus dense biases and BN."""
    shapes = {"Dense_0": (128, 4096)}
    shapes |= {f"Conv3x3_{i}": (3, 3, 256, 256) for i in range(6)}
    shapes |= {f"Conv1x1_{i}": (1, 1, 256, 256) for i in range(3)}
    shapes |= {"ConvOut": (3, 3, 256, 3)}
    keys = jax.random.split(key, len(shapes))
    params = {
        name: {
            "kernel": 0.05 * jax.random.normal(k, shape),
            "bias": jnp.zeros(shape[-1]),
        }
        for (name, shape), k in zip(shapes.items(), keys, strict=True)
    }
    params |= {f"BatchNorm_{i}": {"scale": jnp.ones(256)} for i in range(7)}
    return params


def median_seconds(fn: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``fn()`` after one warm-up call (which also compiles)."""
    jax.block_until_ready(fn())
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(repeats: int) -> dict:
    k_params, k_masks, k_grads, k_update = jax.random.split(jax.random.key(0), 4)
    params = sngan_generator_like(k_params)
    masks = sparse.init_masks(k_masks, params, DENSITY)
    params = sparse.apply_masks(params, masks)
    grads = jax.tree.map(lambda p: jax.random.normal(k_grads, p.shape), params)
    maskable = sparse.count_maskable(masks)
    nnz = int(sparse.count_active(masks))

    drop_grow = jax.jit(sparse.drop_grow, static_argnames=("grow", "scope"))
    resize = jax.jit(sparse.resize, static_argnames=("grow",))
    adam = optax.adam(2e-4)
    sparse_adam = sparse.keep_sparse(adam)
    adam_state = adam.init(params)

    @jax.jit
    def adam_step(params, state, grads):
        updates, state = adam.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    @jax.jit
    def sparse_adam_step(params, state, grads, masks):
        updates, state = sparse_adam.update(grads, state, params, masks=masks)
        return optax.apply_updates(params, updates), state

    # update_every=2: from count 0 the next step is not a mask step, from count 1 it is
    dynamic = sparse.dynamic_sparse(adam, masks, key=k_update, update_every=2, drop_fraction=0.3)
    dynamic_state = dynamic.init(params)
    due_state = dynamic_state._replace(count=jnp.int32(1))

    @jax.jit
    def dynamic_step(params, state, grads):
        updates, state = dynamic.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    @jax.jit
    def flat_argsort(params):
        flat = [jnp.ravel(params[name]["kernel"]) for name in params if "kernel" in params[name]]
        return jnp.argsort(jnp.abs(jnp.concatenate(flat)))

    fraction = jnp.float32(0.3)
    grow_to = jnp.int32(round(0.15 * maskable))
    timings = {
        "adam_dense": median_seconds(lambda: adam_step(params, adam_state, grads), repeats),
        "keep_sparse_adam": median_seconds(
            lambda: sparse_adam_step(params, adam_state, grads, masks), repeats
        ),
        "dynamic_sparse_adam": median_seconds(
            lambda: dynamic_step(params, dynamic_state, grads), repeats
        ),
        "dynamic_sparse_adam_mask_step": median_seconds(
            lambda: dynamic_step(params, due_state, grads), repeats
        ),
        "drop_grow_global_rigl": median_seconds(
            lambda: drop_grow(k_update, params, masks, grads, fraction), repeats
        ),
        "drop_grow_layer_rigl": median_seconds(
            lambda: drop_grow(k_update, params, masks, grads, fraction, scope="layer"), repeats
        ),
        "resize_grow_rigl": median_seconds(
            lambda: resize(k_update, params, masks, grads, grow_to), repeats
        ),
        # context: what one sort of the flat scores costs (a sort-based update needs two)
        "one_argsort_flat_scores": median_seconds(lambda: flat_argsort(params), repeats),
    }
    base = timings["adam_dense"]
    device = jax.devices()[0]
    return {
        "jax_version": jax.__version__,
        "optax_version": optax.__version__,
        "device": f"{device.platform}: {device.device_kind}",
        "host": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "load_average_1m_at_end": os.getloadavg()[0],  # shared machines skew timings
        "timestamp": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "maskable_params": maskable,
        "active_params": nnz,
        "density": DENSITY,
        "drop_fraction": float(fraction),
        "resize_target": int(grow_to),
        "repeats": repeats,
        "median_seconds": timings,
        "ratio_to_adam_dense": {name: t / base for name, t in timings.items()},
    }


def print_table(result: dict) -> None:
    print(
        f"{result['maskable_params']:,} maskable params, density {result['density']}, "
        f"{result['device']}, jax {result['jax_version']}"
    )
    print(f"{'operation':<32}{'median ms':>12}{'x adam':>10}")
    for name, seconds in result["median_seconds"].items():
        ratio = result["ratio_to_adam_dense"][name]
        print(f"{name:<32}{seconds * 1e3:>12.2f}{ratio:>10.1f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--out", type=pathlib.Path, default=RESULTS)
    args = parser.parse_args()
    result = main(args.repeats)
    print_table(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
