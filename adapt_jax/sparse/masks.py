"""Mask pytrees: which leaves are maskable, random exact-count init, applying and counting.

A masks tree has the params' structure with a bool array at every maskable leaf and ``None``
elsewhere. ``None`` is an empty pytree to JAX, so every map here passes
``is_leaf=is_none`` to keep masks and params aligned.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import tree_util

from adapt_jax.sparse.distributions import layer_counts
from adapt_jax.sparse.topk import seed_words, top_k_mask

PyTree = Any
IsMaskable = Callable[[str, Any], bool]


def is_none(x: Any) -> bool:
    """``is_leaf`` predicate that keeps ``None`` mask entries as leaves."""
    return x is None


def _key_name(entry: Any) -> str:
    for attr in ("key", "name", "idx"):
        if hasattr(entry, attr):
            return str(getattr(entry, attr))
    return str(entry)


def path_str(path: tuple[Any, ...]) -> str:
    """``('Dense_0', 'kernel')`` key path -> ``'Dense_0/kernel'``: stable names for configs/logs."""
    return "/".join(_key_name(entry) for entry in path)


def default_is_maskable(name: str, leaf: Any) -> bool:
    """Conv/dense kernels (flax names them ``kernel``); biases, norms, embeddings stay dense."""
    return getattr(leaf, "ndim", 0) >= 2 and name.rsplit("/", 1)[-1] == "kernel"


def maskable_shapes(params: PyTree, is_maskable: IsMaskable | None = None) -> dict[str, tuple]:
    """``{name: shape}`` of the maskable leaves, in flatten order (works on abstract params)."""
    is_maskable = is_maskable or default_is_maskable
    leaves = tree_util.tree_flatten_with_path(params)[0]
    named = ((path_str(path), leaf) for path, leaf in leaves)
    return {name: tuple(leaf.shape) for name, leaf in named if is_maskable(name, leaf)}


@functools.partial(jax.jit, static_argnames="shapes")
def _random_exact_masks(
    key: jax.Array, counts: jax.Array, shapes: tuple[tuple[int, ...], ...]
) -> list[jax.Array]:
    """Masks with exactly ``counts[i]`` True entries, uniformly placed, for each shape.

    One segmented top-k over random bits covers all leaves: one small program per model (counts
    are traced), where a permutation per leaf compiled a sort for every leaf shape.
    """
    sizes = tuple(math.prod(shape) for shape in shapes)
    bits_key, tie_key = jax.random.split(key)
    bits = jax.random.bits(bits_key, (sum(sizes),), jnp.uint32)
    flat = top_k_mask(bits, counts, seed_words(tie_key)[0], sizes)
    parts = jnp.split(flat, np.cumsum(sizes)[:-1])
    return [part.reshape(shape) for part, shape in zip(parts, shapes, strict=True)]


def init_masks(
    key: jax.Array,
    params: PyTree,
    density: float,
    distribution: str = "erk",
    is_maskable: IsMaskable | None = None,
) -> PyTree:
    """Random masks with exactly ``layer_counts(...)`` active entries per maskable leaf."""
    is_maskable = is_maskable or default_is_maskable
    shapes = maskable_shapes(params, is_maskable)
    counts = layer_counts(shapes, density, distribution)
    if not shapes:
        return jax.tree.map(lambda _: None, params)
    count_array = jnp.asarray(list(counts.values()), jnp.int32)
    drawn = _random_exact_masks(key, count_array, tuple(shapes.values()))
    by_name = dict(zip(shapes, drawn, strict=True))
    return tree_util.tree_map_with_path(lambda path, _: by_name.get(path_str(path)), params)


def apply_masks(params: PyTree, masks: PyTree) -> PyTree:
    """Zero params where the mask is off (``where``, not multiply, so inf/NaN do not leak)."""
    return jax.tree.map(
        lambda m, p: p if m is None else jnp.where(m, p, jnp.zeros_like(p)),
        masks,
        params,
        is_leaf=is_none,
    )


def mask_leaves(masks: PyTree) -> list[jax.Array]:
    """The non-``None`` mask arrays in flatten order."""
    return [m for m in jax.tree.leaves(masks, is_leaf=is_none) if m is not None]


def count_active(masks: PyTree) -> jax.Array:
    """Total active entries as an int32 scalar (jittable)."""
    return sum((jnp.sum(m, dtype=jnp.int32) for m in mask_leaves(masks)), jnp.int32(0))


def count_maskable(masks: PyTree) -> int:
    """Total maskable entries; a Python int because shapes are static."""
    return sum(int(np.prod(m.shape)) for m in mask_leaves(masks))


def named_masks(masks: PyTree) -> dict[str, Any]:
    """``{name: mask}`` for the maskable leaves, names as in :func:`maskable_shapes`."""
    leaves = tree_util.tree_flatten_with_path(masks, is_leaf=is_none)[0]
    return {path_str(path): m for path, m in leaves if m is not None}


def density_stats(masks: PyTree) -> dict:
    """Host-side summary for logs: overall density, counts, and density and count per layer."""
    layers = {name: np.asarray(m) for name, m in named_masks(masks).items()}
    active = sum(int(m.sum()) for m in layers.values())
    maskable = sum(m.size for m in layers.values())
    return {
        "density": active / maskable if maskable else 1.0,
        "active": active,
        "maskable": maskable,
        "layers": {name: float(m.mean()) for name, m in layers.items()},
        "layer_active": {name: int(m.sum()) for name, m in layers.items()},
    }


def grown_entries(old_masks: PyTree, new_masks: PyTree) -> PyTree:
    """Entries active now but not before (``new & ~old``); ``None`` stays ``None``."""
    return jax.tree.map(
        lambda old, new: None if new is None else new & ~old,
        old_masks,
        new_masks,
        is_leaf=is_none,
    )


def flatten_like(masks: PyTree, *trees: PyTree) -> tuple[Any, list[Any], list[list[Any]]]:
    """Flatten ``masks`` (``None`` kept) and each tree up to it, for leaf-aligned loops."""
    leaves, treedef = jax.tree.flatten(masks, is_leaf=is_none)
    return treedef, leaves, [treedef.flatten_up_to(tree) for tree in trees]
