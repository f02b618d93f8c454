"""Pytree plumbing for masks trees: ``None`` leaves kept as leaves, and stable leaf names.

A masks tree has the params' structure with a bool array at every maskable leaf and ``None``
elsewhere. ``None`` is an empty pytree to JAX, so a plain ``jax.tree.map`` would skip those
positions and misalign masks and params; everything here keeps them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
from jax import tree_util

PyTree = Any


def is_leaf(x: Any) -> bool:
    """``is_leaf`` predicate that keeps the ``None`` entries of a masks tree as leaves.

    Example:
        >>> import jax
        >>> from adapt_jax import sparse
        >>> jax.tree.leaves({"a": None, "b": True}, is_leaf=sparse.is_leaf)
        [None, True]
    """
    return x is None


def tree_map(f: Callable[..., Any], masks: PyTree, *rest: PyTree) -> PyTree:
    """``jax.tree.map(f, masks, *rest)`` with ``None`` mask entries passed to ``f`` as leaves.

    ``rest`` are trees with the params' structure (params, grads, updates); ``f`` receives the
    mask leaf (an array or ``None``) followed by the matching leaves of ``rest``.

    Example:
        >>> import jax.numpy as jnp
        >>> from adapt_jax import sparse
        >>> masks = {"kernel": jnp.array([True, False]), "bias": None}
        >>> params = {"kernel": jnp.array([1.0, 2.0]), "bias": jnp.array([3.0])}
        >>> sparse.tree_map(lambda m, p: p if m is None else p * m, masks, params)["kernel"]
        Array([1., 0.], dtype=float32)
    """
    return jax.tree.map(f, masks, *rest, is_leaf=is_leaf)


def mask_leaves(masks: PyTree) -> list[Any]:
    """The non-``None`` mask arrays in flatten order."""
    return [m for m in jax.tree.leaves(masks, is_leaf=is_leaf) if m is not None]


def flatten_like(masks: PyTree, *trees: PyTree) -> tuple[Any, list[Any], list[list[Any]]]:
    """Flatten ``masks`` (``None`` kept) and each tree up to it, for leaf-aligned loops."""
    leaves, treedef = jax.tree.flatten(masks, is_leaf=is_leaf)
    return treedef, leaves, [treedef.flatten_up_to(tree) for tree in trees]


def _key_name(entry: Any) -> str:
    for attr in ("key", "name", "idx"):
        if hasattr(entry, attr):
            return str(getattr(entry, attr))
    return str(entry)


def path_str(path: tuple[Any, ...]) -> str:
    """A JAX key path as ``'Dense_0/kernel'``: the stable leaf name used in configs and logs.

    Example:
        >>> import jax
        >>> from adapt_jax import sparse
        >>> [sparse.path_str(p) for p, _ in jax.tree.leaves_with_path({"Dense_0": {"kernel": 1}})]
        ['Dense_0/kernel']
    """
    return "/".join(_key_name(entry) for entry in path)


def named_masks(masks: PyTree) -> dict[str, Any]:
    """``{name: mask}`` of the maskable leaves, named by :func:`path_str`, in flatten order.

    Example:
        >>> from adapt_jax import sparse
        >>> sparse.named_masks({"Dense_0": {"kernel": True, "bias": None}})
        {'Dense_0/kernel': True}
    """
    leaves = tree_util.tree_flatten_with_path(masks, is_leaf=is_leaf)[0]
    return {path_str(path): m for path, m in leaves if m is not None}
