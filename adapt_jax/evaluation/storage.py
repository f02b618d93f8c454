"""On-disk arrays for the evaluation code: flat '/'-named `.npz` files and cache keys.

One format serves Inception weights, classifier weights and statistics, so the converter, the
loader and the caches cannot drift apart.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from flax import traverse_util


def flatten(tree: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Nested dict of arrays -> {'a/b/c': array} (host numpy)."""
    flat = traverse_util.flatten_dict(dict(tree), sep="/")
    return {k: np.asarray(v) for k, v in flat.items()}


def unflatten(flat: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """Inverse of `flatten`."""
    return traverse_util.unflatten_dict(dict(flat), sep="/")


def save_npz(path: str, arrays: Mapping[str, np.ndarray]) -> None:
    """Writes atomically (temp file + rename) so a killed run never leaves a truncated cache."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **{k: np.asarray(v) for k, v in arrays.items()})
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def load_npz(path: str) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def cached(path: str | None, compute: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Loads `path` if present, else computes and (when `path` is given) stores the arrays."""
    if path and os.path.exists(path):
        return load_npz(path)
    arrays = compute()
    if path:
        save_npz(path, arrays)
    return arrays


def fingerprint(*parts: Any) -> str:
    """Short stable hash of strings/numbers/arrays, used in cache file names."""
    h = hashlib.sha256()
    for part in parts:
        data = np.ascontiguousarray(part).tobytes() if isinstance(part, np.ndarray) else repr(part)
        h.update(data if isinstance(data, bytes) else data.encode())
        h.update(b"|")
    return h.hexdigest()[:16]


def source_fingerprint(source: Any, num_probe: int = 8) -> str:
    """Identifies a data source by its shape and a few of its images and labels.

    The source contract has no name, and two sources with the same size and resolution (e.g. two
    splits) must not share a cache entry, so a handful of evenly spaced examples are hashed too.
    """
    n = int(source.num_examples)
    idx = np.unique(np.linspace(0, n - 1, num=min(num_probe, n)).astype(np.int64))
    images, labels = source.get(idx)
    return fingerprint(
        getattr(source, "description", ""), n, int(source.num_classes), int(source.resolution),
        np.asarray(images), np.asarray(labels),
    )


def file_fingerprint(path: str) -> str:
    """Content hash of a (weights) file, so stats cached for other weights are not reused."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()[:16]
