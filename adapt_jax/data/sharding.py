"""Host batches -> one global array split over the mesh's 'data' axis (jit-era data parallel)."""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

DATA_AXIS = "data"


def to_global(mesh: Mesh, x: np.ndarray) -> jax.Array:
    """Assemble this process's rows into a global batch sharded `P('data')`.

    Each process passes only its own rows (what its `BatchIterator` yields); the global batch
    size is the local size times the process count, and the rows land on this process's devices.
    """
    if DATA_AXIS not in mesh.shape:
        raise ValueError(f"mesh has axes {tuple(mesh.shape)}; to_global needs a {DATA_AXIS!r} "
                         f"axis, e.g. jax.make_mesh((jax.device_count(),), ('data',))")
    x = np.asarray(x)
    if x.ndim == 0:
        raise ValueError("to_global needs a batch (an array with a leading batch axis)")
    shards = mesh.shape[DATA_AXIS]
    global_batch = x.shape[0] * jax.process_count()
    if global_batch % shards:
        fit = (global_batch // shards + 1) * shards
        raise ValueError(
            f"global batch size {global_batch} does not divide by the {shards} devices of mesh "
            f"axis {DATA_AXIS!r}; set the batch size to a multiple of {shards} (e.g. {fit}) or "
            f"run on a device count that divides {global_batch}")
    return jax.make_array_from_process_local_data(
        NamedSharding(mesh, PartitionSpec(DATA_AXIS)), x)
