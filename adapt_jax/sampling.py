"""Images from a generator, in fixed-size batches sharded over all devices.

One function serves the trainer's sample grids and evaluation and the `sample` CLI, so the
images a user exports are produced exactly as the ones we scored.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from adapt_jax.report import to_uint8


def make_generate_fn(generator, batch_stats: bool) -> Callable:
    """jit(params, stats, z, y) → images in [-1, 1].

    batch_stats=True is the reference's eval mode (G in train mode, BN on each batch); the
    updated running statistics are discarded.
    """

    def generate(params, stats, z, y):
        variables = {"params": params, **stats}
        if batch_stats:
            out, _ = generator.apply(variables, z, y, train=True, mutable=list(stats))
            return out
        return generator.apply(variables, z, y, train=False)

    return jax.jit(generate)


def sample_batches(generate_fn: Callable, params: Any, stats: dict, *, z_dim: int,
                   num_classes: int, key: jax.Array, num: int, batch_size: int,
                   labels: np.ndarray | None = None,
                   mesh: jax.sharding.Mesh | None = None) -> Iterator[np.ndarray]:
    """Yield uint8 (b, H, W, 3) batches, `num` images in all; deterministic for a given key.

    Every batch has the same shape (the last is padded then cut) so one executable serves all.
    Labels: given array, or uniform random classes when None (conditional models only).
    """
    sharding = None if mesh is None else NamedSharding(mesh, P("data"))
    for start in range(0, num, batch_size):
        k = jax.random.fold_in(key, start)
        m = min(batch_size, num - start)
        z = jax.random.normal(k, (batch_size, z_dim))
        y = None
        if num_classes:
            if labels is not None:
                y = jnp.asarray(np.resize(labels[start:start + m], batch_size), jnp.int32)
            else:
                y = jax.random.randint(jax.random.fold_in(k, 1), (batch_size,), 0,
                                       num_classes)
        if sharding is not None:
            z = jax.device_put(z, sharding)
            y = None if y is None else jax.device_put(y, sharding)
        yield to_uint8(np.asarray(generate_fn(params, stats, z, y)))[:m]


def sample(generate_fn: Callable, params: Any, stats: dict, **kwargs) -> np.ndarray:
    """All of `sample_batches` as one array."""
    return np.concatenate(list(sample_batches(generate_fn, params, stats, **kwargs)))
