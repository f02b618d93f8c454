"""Mask updates: drop-and-grow (SET / RigL) and resizing to a new total active count.

All counts (drop fraction, target count) are traced, so one jitted update serves every density
the controller asks for. Maskable leaves are concatenated into one flat vector; global scope ranks
it as a whole, layer scope ranks each leaf's segment on its own (same code, one loop either way).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from adapt_jax.sparse._topk import (
    Sizes,
    score_bits,
    seed_words,
    segment_sums,
    top_k_mask,
    with_priority,
)
from adapt_jax.sparse._tree import PyTree, flatten_like

GROW_MODES = ("rigl", "set")
SCOPES = ("global", "layer")

# (tie-break seeds (2, 2), |w|, mask, grow score, traced scalar, segment sizes) -> new flat mask
FlatUpdate = Callable[[jax.Array, jax.Array, jax.Array, jax.Array, jax.Array, Sizes], jax.Array]


def check_choice(name: str, value: str, valid: tuple[str, ...]) -> None:
    """Reject a string option outside ``valid`` with a message that lists the choices."""
    if value not in valid:
        raise ValueError(f"{name} must be one of {', '.join(valid)}; got {value!r}")


def num_to_drop(nnz: jax.Array, drop_fraction: jax.Array | float) -> jax.Array:
    """How many entries :func:`drop_grow` drops: ``floor(nnz * drop_fraction)`` in float32.

    Args:
        nnz: active count(s), an integer array.
        drop_fraction: clipped to [0, 1].

    Returns:
        int32, clipped to ``[0, nnz]``.

    Example:
        >>> import jax.numpy as jnp
        >>> from adapt_jax import sparse
        >>> int(sparse.num_to_drop(jnp.int32(10), 0.25))
        2
    """
    fraction = jnp.clip(jnp.asarray(drop_fraction, jnp.float32), 0.0, 1.0)
    dropped = jnp.floor(nnz.astype(jnp.float32) * fraction).astype(jnp.int32)
    return jnp.clip(dropped, 0, nnz)


def _flat_drop_grow(seeds, weight_abs, mask, grow_score, drop_fraction, sizes) -> jax.Array:
    """Per segment: keep the ``nnz - n_drop`` largest |w| among active, refill by grow score."""
    nnz = segment_sums(mask, sizes)
    keep = nnz - num_to_drop(nnz, drop_fraction)
    kept = top_k_mask(with_priority(score_bits(weight_abs), mask), keep, seeds[0], sizes)
    return top_k_mask(with_priority(score_bits(grow_score), kept), nnz, seeds[1], sizes)


def _flat_resize(seeds, weight_abs, mask, grow_score, target_count, sizes) -> jax.Array:
    """One ranking: active entries by |w| first, then inactive ones by grow score; keep target."""
    score = jnp.where(mask, weight_abs, grow_score)
    return top_k_mask(with_priority(score_bits(score), mask), target_count, seeds[0], sizes)


def _update(
    key: jax.Array,
    params: PyTree,
    masks: PyTree,
    grads: PyTree | None,
    scalar: jax.Array,
    grow: str,
    scope: str,
    flat_update: FlatUpdate,
) -> tuple[PyTree, PyTree]:
    """Shared plumbing: concatenate maskable leaves, rank (leaves as segments in layer scope),
    split back, and zero every entry that did not survive."""
    check_choice("grow", grow, GROW_MODES)
    check_choice("scope", scope, SCOPES)
    if grow == "rigl" and grads is None:
        raise ValueError("grow='rigl' needs grads")
    rank_key, score_key = jax.random.split(key)
    treedef, m_leaves, (p_leaves,) = flatten_like(masks, params)
    slots = [i for i, m in enumerate(m_leaves) if m is not None]
    if not slots:
        return params, masks

    def flat(leaves: list) -> jax.Array:
        return jnp.concatenate([jnp.ravel(leaves[i]).astype(jnp.float32) for i in slots])

    sizes = tuple(m_leaves[i].size for i in slots)
    if grow == "rigl":
        grow_score = jnp.abs(flat(flatten_like(masks, grads)[2][0]))
    else:  # one draw for all leaves: uniform over entries, and one RNG op to compile
        grow_score = jax.random.uniform(score_key, (sum(sizes),))
    new_flat = flat_update(
        seed_words(rank_key, 2),
        jnp.abs(flat(p_leaves)),
        jnp.concatenate([jnp.ravel(m_leaves[i]) for i in slots]),
        grow_score,
        scalar,
        sizes if scope == "layer" else (sum(sizes),),
    )
    new_masks, new_params = list(m_leaves), list(p_leaves)
    for i, part in zip(slots, jnp.split(new_flat, np.cumsum(sizes)[:-1]), strict=True):
        new_masks[i] = part.reshape(m_leaves[i].shape)
        survived = new_masks[i] & m_leaves[i]
        new_params[i] = jnp.where(survived, p_leaves[i], jnp.zeros_like(p_leaves[i]))
    return treedef.unflatten(new_params), treedef.unflatten(new_masks)


def drop_grow(key: jax.Array, params: PyTree, masks: PyTree, grads: PyTree | None,
              drop_fraction: jax.Array | float, *, grow: str = "rigl",
              scope: str = "global") -> tuple[PyTree, PyTree]:
    """One SET/RigL mask update at a constant active count (jittable, ``grow``/``scope`` static).

    Drops the ``floor(nnz * drop_fraction)`` active entries of smallest ``|w|`` and grows as many
    among all entries not kept, the just-dropped ones included. A weight dropped and regrown
    keeps its value; other grown weights start at 0; dropped ones are zeroed.

    Args:
        key: PRNG key for tie-breaks (and SET's random growth).
        params: params, already masked.
        masks: the current masks tree.
        grads: gradients at the pre-update weights; ``None`` is allowed for ``grow='set'``.
        drop_fraction: fraction of each segment's active entries to move (may be traced).
        grow: ``'rigl'`` grows by largest ``|grad|``, ``'set'`` uniformly at random.
        scope: ``'global'`` ranks all maskable leaves together; ``'layer'`` keeps each leaf's
            count.

    Returns:
        ``(params, masks)`` after the update.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from adapt_jax import sparse
        >>> params = {"kernel": jnp.array([[0.5, 0.0], [0.1, 0.0]])}
        >>> masks = {"kernel": jnp.array([[True, False], [True, False]])}
        >>> grads = {"kernel": jnp.array([[0.0, 0.0], [0.0, 9.0]])}
        >>> update = jax.jit(sparse.drop_grow, static_argnames=("grow", "scope"))
        >>> params, masks = update(jax.random.key(0), params, masks, grads, 0.5)
        >>> masks["kernel"]
        Array([[ True, False],
               [False,  True]], dtype=bool)
    """
    return _update(key, params, masks, grads, drop_fraction, grow, scope, _flat_drop_grow)


def resize(key: jax.Array, params: PyTree, masks: PyTree, grads: PyTree | None,
           target_count: jax.Array | int, *, grow: str = "rigl") -> tuple[PyTree, PyTree]:
    """Change the total active count over all maskable leaves to ``target_count`` (jittable).

    Growing adds the best inactive entries at value 0 and drops none; shrinking prunes the
    smallest-``|w|`` active entries and grows none.

    Args:
        key: PRNG key for tie-breaks (and SET's random growth).
        params: params, already masked.
        masks: the current masks tree.
        grads: ranks growth for ``'rigl'``; ``None`` is allowed for ``grow='set'``.
        target_count: the new total, clipped to ``[0, maskable]`` (may be traced).
        grow: ``'rigl'`` grows by largest ``|grad|``, ``'set'`` uniformly at random.

    Returns:
        ``(params, masks)`` after the update.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from adapt_jax import sparse
        >>> params = {"kernel": jnp.array([0.5, 0.1, 0.0, 0.0])}
        >>> masks = {"kernel": jnp.array([True, True, False, False])}
        >>> resize = jax.jit(sparse.resize, static_argnames="grow")
        >>> _, masks = resize(jax.random.key(0), params, masks, None, 1, grow="set")
        >>> masks["kernel"]
        Array([ True, False, False, False], dtype=bool)
    """
    return _update(key, params, masks, grads, target_count, grow, "global", _flat_resize)
