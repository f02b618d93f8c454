"""Per-leaf SHA-256 digests of a checkpointed tree, to catch silent corruption.

Orbax's zarr/OCDBT files carry no checksum of the array data (zarr3's `crc32c` guards only the
shard index), so flipped bytes in a data file can decode to different numbers without any error.
We therefore store a digest of every leaf in the checkpoint's host JSON when saving and compare
after restoring. It is computed from the in-memory arrays being saved (no file is read back,
async saves are unaffected) over each array's full C-order bytes, so it is the same for any
device count or sharding. Host copies, not a jitted hash: a jitted digest of a few hundred
leaves took longer to compile than the whole hash costs on the host.
"""

from __future__ import annotations

import hashlib
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp


def _host(x: Any) -> np.ndarray:
    """The whole array on this host (replicated state: any one shard is the whole array)."""
    if isinstance(x, jax.Array):
        if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            x = jax.random.key_data(x)
        if not x.is_fully_addressable:
            x = x.addressable_data(0)
    return np.ascontiguousarray(np.asarray(x))


def flat_leaves(tree: Any) -> dict[str, Any]:
    """Array leaves by '/'-joined key path as orbax stores them: the same for a dataclass
    state and the plain dict a target-free restore returns."""
    flat = jax.tree_util.tree_flatten_with_path(ocp.tree.serialize_tree(tree))[0]
    return {"/".join(str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k))))
                     for k in path): leaf
            for path, leaf in flat if hasattr(leaf, "dtype")}


def tree_digest(tree: Any) -> dict[str, str]:
    """{leaf path: first 16 hex digits of SHA-256 over dtype, shape and bytes}."""
    out = {}
    for path, leaf in flat_leaves(tree).items():
        a = _host(leaf)
        h = hashlib.sha256(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.reshape(-1).view(np.uint8))
        out[path] = h.hexdigest()[:16]
    return out


def mismatched_leaves(tree: Any, expected: dict[str, str]) -> list[str]:
    """Paths whose digest differs from `expected` (or that are missing on either side)."""
    actual = tree_digest(tree)
    return sorted(k for k in set(actual) | set(expected) if actual.get(k) != expected.get(k))
