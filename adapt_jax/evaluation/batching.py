"""Run a jitted feature network over arbitrary image counts with one compiled batch shape.

Every call is cut into fixed-size chunks (the last one zero-padded) so XLA compiles once, and each
chunk is sharded over a 1-D 'data' mesh of this process's devices (a no-op on one device).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

FeatureFn = Callable[[Any, jax.Array], dict[str, jax.Array]]


class BatchedApply:
    """`fn(variables, uint8 images) -> {name: (n, ...) array}` applied chunkwise to host data."""

    def __init__(self, fn: FeatureFn, variables: Any, batch_size: int) -> None:
        devices = jax.local_devices()
        self._mesh = Mesh(np.asarray(devices), ("data",))
        # Round up so every device gets the same number of rows.
        self.batch_size = -(-int(batch_size) // len(devices)) * len(devices)
        self._data = NamedSharding(self._mesh, PartitionSpec("data"))
        self._variables = jax.device_put(variables, NamedSharding(self._mesh, PartitionSpec()))
        self._fn = jax.jit(fn)

    def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
        images = np.asarray(images)
        outputs: list[dict[str, np.ndarray]] = []
        for start in range(0, images.shape[0], self.batch_size):
            chunk = images[start:start + self.batch_size]
            n = chunk.shape[0]
            if n < self.batch_size:
                pad = np.zeros((self.batch_size - n, *chunk.shape[1:]), chunk.dtype)
                chunk = np.concatenate([chunk, pad])
            out = self._fn(self._variables, jax.device_put(chunk, self._data))
            outputs.append({k: np.asarray(v)[:n] for k, v in out.items()})
        if not outputs:
            raise ValueError("no images given")
        return {k: np.concatenate([o[k] for o in outputs]) for k in outputs[0]}
