"""Mask pytrees: which leaves are maskable, random exact-count init, applying and counting."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import tree_util

from adapt_jax.sparse._distributions import layer_counts
from adapt_jax.sparse._topk import seed_words, top_k_mask
from adapt_jax.sparse._tree import PyTree, mask_leaves, path_str, tree_map

IsMaskable = Callable[[str, Any], bool]


def default_is_maskable(name: str, leaf: Any) -> bool:
    """Conv and dense kernels are maskable; biases, norms and embeddings stay dense.

    Args:
        name: the leaf's :func:`path_str` name; flax calls conv and dense weights ``kernel``.
        leaf: the array (or ``jax.ShapeDtypeStruct``) at that position.

    Returns:
        Whether the leaf has ``ndim >= 2`` and its last name component is ``kernel``.

    Example:
        >>> import jax.numpy as jnp
        >>> from adapt_jax import sparse
        >>> sparse.default_is_maskable("Conv_0/kernel", jnp.ones((3, 3, 2, 4)))
        True
        >>> sparse.default_is_maskable("Conv_0/bias", jnp.ones(4))
        False
    """
    return getattr(leaf, "ndim", 0) >= 2 and name.rsplit("/", 1)[-1] == "kernel"


def maskable_shapes(params: PyTree, is_maskable: IsMaskable | None = None) -> dict[str, tuple]:
    """Shapes of the maskable leaves, the input of the density distributions.

    Args:
        params: a params pytree; abstract leaves (``jax.eval_shape``) work too.
        is_maskable: ``(name, leaf) -> bool``; defaults to :func:`default_is_maskable`.

    Returns:
        ``{name: shape}`` in flatten order.

    Example:
        >>> import jax.numpy as jnp
        >>> from adapt_jax import sparse
        >>> sparse.maskable_shapes({"Dense_0": {"kernel": jnp.ones((4, 5)), "bias": jnp.ones(5)}})
        {'Dense_0/kernel': (4, 5)}
    """
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
    """Random masks with exactly :func:`layer_counts` active entries per maskable leaf.

    Args:
        key: PRNG key; the same key gives the same masks.
        params: the params pytree (only structure and shapes are read).
        density: overall fraction of maskable entries that are active, in (0, 1].
        distribution: ``'erk'``, ``'er'`` or ``'uniform'`` (see :func:`layer_densities`).
        is_maskable: ``(name, leaf) -> bool``; defaults to :func:`default_is_maskable`.

    Returns:
        A masks tree: a bool array at every maskable leaf, ``None`` elsewhere.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from adapt_jax import sparse
        >>> params = {"Dense_0": {"kernel": jnp.ones((4, 5)), "bias": jnp.ones(5)}}
        >>> masks = sparse.init_masks(jax.random.key(0), params, density=0.5)
        >>> int(masks["Dense_0"]["kernel"].sum()), masks["Dense_0"]["bias"]
        (10, None)
    """
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
    """Zero params where the mask is off (jittable).

    ``where``, not a multiply, so an inf or NaN at an inactive entry does not leak through.

    Example:
        >>> import jax.numpy as jnp
        >>> from adapt_jax import sparse
        >>> sparse.apply_masks({"kernel": jnp.array([jnp.inf, 2.0])},
        ...                    {"kernel": jnp.array([False, True])})["kernel"]
        Array([0., 2.], dtype=float32)
    """
    return tree_map(lambda m, p: p if m is None else jnp.where(m, p, jnp.zeros_like(p)),
                    masks, params)


def count_active(masks: PyTree) -> jax.Array:
    """Total active entries over all maskable leaves, as an int32 scalar (jittable).

    Example:
        >>> import jax.numpy as jnp
        >>> from adapt_jax import sparse
        >>> int(sparse.count_active({"kernel": jnp.array([True, False, True]), "bias": None}))
        2
    """
    return sum((jnp.sum(m, dtype=jnp.int32) for m in mask_leaves(masks)), jnp.int32(0))


def count_maskable(masks: PyTree) -> int:
    """Total maskable entries, a Python int because shapes are static.

    Example:
        >>> import jax.numpy as jnp
        >>> from adapt_jax import sparse
        >>> sparse.count_maskable({"kernel": jnp.zeros((2, 3), bool), "bias": None})
        6
    """
    return sum(math.prod(m.shape) for m in mask_leaves(masks))


def grown_entries(old_masks: PyTree, new_masks: PyTree) -> PyTree:
    """Entries active now but not before (``new & ~old``); ``None`` stays ``None``.

    Example:
        >>> import jax.numpy as jnp
        >>> from adapt_jax import sparse
        >>> sparse.grown_entries({"kernel": jnp.array([True, False])},
        ...                      {"kernel": jnp.array([False, True])})["kernel"]
        Array([False,  True], dtype=bool)
    """
    return tree_map(lambda old, new: None if new is None else new & ~old, old_masks, new_masks)
