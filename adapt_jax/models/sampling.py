"""Images from a generator, in fixed-size batches sharded over all devices of all processes.

One function serves the trainer's sample grids and evaluation and the `sample` CLI, so the
images a user exports are produced exactly as the ones we scored.

Any batch size works on any device count: a batch is padded with extra latents up to a multiple
of the device count and the extra images are dropped. Every process receives every image
(gathered across processes), so each can hand them to the evaluator or write them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

# fold_in streams of one batch key: latents (the key itself), labels, padding latents and labels.
_LABELS, _PAD_Z, _PAD_Y = 1, 2, 3


def to_uint8(images: np.ndarray) -> np.ndarray:
    """[-1, 1] floats → uint8 the way the reference saves samples (x*127.5+127.5, clamp)."""
    return np.clip(np.asarray(images, np.float32) * 127.5 + 127.5, 0, 255).astype(np.uint8)


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


def padded_size(batch_size: int, num_devices: int) -> int:
    """The smallest multiple of `num_devices` that holds `batch_size` rows."""
    return -(-batch_size // num_devices) * num_devices


def to_mesh(x: np.ndarray, sharding: NamedSharding) -> jax.Array:
    """A host array every process holds in full → a global array with `sharding`.

    Works where `device_put` cannot: with several processes each one fills only its own
    devices' shards.
    """
    x = np.asarray(x)
    return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])


def replicate(tree: Any, mesh: Mesh) -> Any:
    """Every leaf on every device of `mesh` (leaves already there are not copied)."""
    sharding = NamedSharding(mesh, P())
    devices = set(mesh.devices.flat)

    def put(leaf):
        if isinstance(leaf, jax.Array) and leaf.sharding.device_set == devices:
            return leaf
        return to_mesh(np.asarray(leaf), sharding)

    return jax.tree.map(put, tree)


def gather(x: jax.Array) -> np.ndarray:
    """The whole of a (possibly multi-process) batch-sharded array on this host."""
    if x.is_fully_addressable:
        return np.asarray(x)
    return np.asarray(multihost_utils.process_allgather(x, tiled=True))


def random_labels(key: jax.Array, n: int, num_classes: int) -> jax.Array:
    """The uniform class labels a batch key draws when no labels are given (callers that need
    to know them, such as the evaluator's class accuracy, draw the same ones)."""
    return jax.random.randint(jax.random.fold_in(key, _LABELS), (n,), 0, num_classes)


def _latents(key: jax.Array, start: int, m: int, batch: int, padded: int, z_dim: int,
             num_classes: int, labels: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
    """z and labels of one batch: `batch` rows from the batch key (the same rows whatever the
    device count), then `padded - batch` padding rows from their own stream."""
    k = jax.random.fold_in(key, start)
    pad = padded - batch
    z = jax.random.normal(k, (batch, z_dim))
    if pad:
        z = jnp.concatenate([z, jax.random.normal(jax.random.fold_in(k, _PAD_Z), (pad, z_dim))])
    if not num_classes:
        return np.asarray(z), None
    y = random_labels(k, batch, num_classes)
    if pad:
        y = jnp.concatenate([y, jax.random.randint(jax.random.fold_in(k, _PAD_Y), (pad,), 0,
                                                   num_classes)])
    y = np.array(y, np.int32)
    if labels is not None:  # the m requested rows; filler rows as without labels
        y[:m] = labels[start:start + m]
    return np.asarray(z), y


def sample_batches(generate_fn: Callable, params: Any, stats: dict, *, z_dim: int,
                   num_classes: int, key: jax.Array, num: int, batch_size: int,
                   labels: np.ndarray | None = None,
                   mesh: Mesh | None = None) -> Iterator[np.ndarray]:
    """Yield uint8 (b, H, W, 3) batches, `num` images in all; deterministic for a given key.

    Every batch has the same shape (the last is padded then cut) so one executable serves all;
    on a mesh it is also padded to a multiple of the device count. Labels: given array, or
    uniform random classes when None (conditional models only). With BatchNorm on batch
    statistics (eval.bn='batch') padding rows join a batch's statistics, so images depend on the
    padded size like they depend on the batch size; a batch size the device count divides
    needs no padding.
    """
    padded = batch_size if mesh is None else padded_size(batch_size, mesh.size)
    if mesh is not None:
        params, stats = replicate((params, stats), mesh)
        sharding = NamedSharding(mesh, P("data"))
    for start in range(0, num, batch_size):
        m = min(batch_size, num - start)
        z, y = _latents(key, start, m, batch_size, padded, z_dim, num_classes, labels)
        if mesh is not None:
            z = to_mesh(z, sharding)
            y = None if y is None else to_mesh(y, sharding)
        yield to_uint8(gather(generate_fn(params, stats, z, y)))[:m]


def sample(generate_fn: Callable, params: Any, stats: dict, **kwargs) -> np.ndarray:
    """All of `sample_batches` as one array."""
    return np.concatenate(list(sample_batches(generate_fn, params, stats, **kwargs)))
