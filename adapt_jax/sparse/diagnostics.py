"""Mask-dynamics diagnostics: in-time over-parameterization (ITOP) and flip rate."""

from __future__ import annotations

import jax
import numpy as np

from adapt_jax.sparse.masks import PyTree, is_none, mask_leaves


def update_ever_active(ever: PyTree | None, masks: PyTree) -> PyTree:
    """Union of all masks seen so far (``ever | masks``); ``ever=None`` starts from ``masks``.

    Jittable. ITOP (Liu et al. 2021) argues DST works because it explores many weights over time.
    """
    if ever is None:
        return masks
    return jax.tree.map(lambda e, m: None if m is None else e | m, ever, masks, is_leaf=is_none)


def itop_rate(ever: PyTree) -> float:
    """Fraction of maskable entries that have ever been active (host side)."""
    leaves = [np.asarray(e) for e in mask_leaves(ever)]
    total = sum(e.size for e in leaves)
    return sum(int(e.sum()) for e in leaves) / total if total else 0.0


def flip_rate(old_masks: PyTree, new_masks: PyTree) -> float:
    """Entries whose state changed, divided by the active entries of ``new_masks`` (host side).

    A drop/grow of n entries flips 2n entries, so this is twice the effective drop fraction.
    """
    pairs = zip(mask_leaves(old_masks), mask_leaves(new_masks), strict=True)
    changed = active = 0
    for old, new in pairs:
        old, new = np.asarray(old), np.asarray(new)
        changed += int((old != new).sum())
        active += int(new.sum())
    return changed / active if active else 0.0
