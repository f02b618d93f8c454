"""Host-side mask summaries: densities, in-time over-parameterization (ITOP) and flip rate."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from adapt_jax.sparse._tree import PyTree, mask_leaves, named_masks, tree_map


class DensityStats(NamedTuple):
    """What :func:`density_stats` reports (plain Python numbers, ready for logs and JSON)."""

    density: float  # active / maskable (1.0 when nothing is maskable)
    active: int  # active entries over all maskable leaves
    maskable: int  # maskable entries
    layers: dict[str, float]  # per-leaf density, by path_str name
    layer_active: dict[str, int]  # per-leaf active count


def density_stats(masks: PyTree) -> DensityStats:
    """Overall and per-layer density of a masks tree (reads the masks to the host).

    Example:
        >>> import jax.numpy as jnp
        >>> from adapt_jax import sparse
        >>> stats = sparse.density_stats({"Dense_0": {"kernel": jnp.array([True, False])}})
        >>> stats.density, stats.active, stats.layers
        (0.5, 1, {'Dense_0/kernel': 0.5})
    """
    layers = {name: np.asarray(m) for name, m in named_masks(masks).items()}
    active = sum(int(m.sum()) for m in layers.values())
    maskable = sum(m.size for m in layers.values())
    return DensityStats(
        density=active / maskable if maskable else 1.0,
        active=active,
        maskable=maskable,
        layers={name: float(m.mean()) for name, m in layers.items()},
        layer_active={name: int(m.sum()) for name, m in layers.items()},
    )


def update_ever_active(ever: PyTree | None, masks: PyTree) -> PyTree:
    """Union of all masks seen so far (``ever | masks``); ``ever=None`` starts from ``masks``.

    Jittable. ITOP (Liu et al. 2021) argues DST works because it explores many weights over time.

    Example:
        >>> import numpy as np
        >>> from adapt_jax import sparse
        >>> ever = sparse.update_ever_active(None, {"kernel": np.array([True, False])})
        >>> sparse.update_ever_active(ever, {"kernel": np.array([False, True])})["kernel"]
        array([ True,  True])
    """
    if ever is None:
        return masks
    return tree_map(lambda e, m: None if m is None else e | m, ever, masks)


def itop_rate(ever: PyTree) -> float:
    """Fraction of maskable entries that have ever been active (host side).

    Example:
        >>> import numpy as np
        >>> from adapt_jax import sparse
        >>> sparse.itop_rate({"kernel": np.array([True, True, False, False])})
        0.5
    """
    leaves = [np.asarray(e) for e in mask_leaves(ever)]
    total = sum(e.size for e in leaves)
    return sum(int(e.sum()) for e in leaves) / total if total else 0.0


def flip_rate(old_masks: PyTree, new_masks: PyTree) -> float:
    """Entries whose state changed, divided by the active entries of ``new_masks`` (host side).

    A drop/grow of n entries flips 2n entries, so this is twice the effective drop fraction.

    Example:
        >>> import numpy as np
        >>> from adapt_jax import sparse
        >>> old, new = np.array([True, False]), np.array([False, True])
        >>> sparse.flip_rate({"kernel": old}, {"kernel": new})
        2.0
    """
    pairs = zip(mask_leaves(old_masks), mask_leaves(new_masks), strict=True)
    changed = active = 0
    for old, new in pairs:
        old, new = np.asarray(old), np.asarray(new)
        changed += int((old != new).sum())
        active += int(new.sum())
    return changed / active if active else 0.0
