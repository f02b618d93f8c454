"""Exact top-k selection with a traced k, by radix bisection instead of sorting.

Every mask update is "keep the k best entries" under a lexicographic order
``(priority flag, score, tie-break)``. The flag and a non-negative float32 score pack into one
order-preserving uint32; the tie-break is a keyed *bijective* hash of the flat index, so it is
random-looking, drawn from the caller's PRNG key, and unique: the order is total and exactly k
entries are selected, whatever the ties. The k-th largest key is found bit by bit with 32
counting passes in a ``lax.fori_loop``, so k is an ordinary traced value (no recompilation when it
changes); on CPU this is several times faster than a multi-operand ``lax.sort`` of that length.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

Sizes = tuple[int, ...]

_FLAG = 0x80000000
_MIX = (0x85EBCA6B, 0xC2B2AE35, 0x9E3779B1)


def score_bits(score: jax.Array) -> jax.Array:
    """Order-preserving uint32 view of a non-negative score; NaN counts as 0 (never preferred)."""
    score = jnp.asarray(score, jnp.float32)
    score = jnp.where(jnp.isnan(score), 0.0, jnp.abs(score))
    return lax.bitcast_convert_type(score, jnp.uint32)


def with_priority(bits: jax.Array, flag: jax.Array) -> jax.Array:
    """Put ``flag`` in the (free) sign bit so flagged entries outrank every unflagged one."""
    return jnp.where(flag, bits | jnp.uint32(_FLAG), bits)


def tie_break_bits(seed: jax.Array, n: int) -> jax.Array:
    """Keyed bijection of ``arange(n)`` onto uint32 (xor/odd-multiply/xorshift steps).

    Each step is invertible, so distinct indices never collide; the murmur3 finaliser constants
    make the order look random, and the two uint32 ``seed`` words (drawn by the caller from its
    PRNG key, see :func:`seed_words`) make it depend on that key.
    """
    x = lax.iota(jnp.uint32, n) ^ seed[0]
    x = (x ^ (x >> 16)) * jnp.uint32(_MIX[0])
    x = (x ^ (x >> 13)) * jnp.uint32(_MIX[1]) + seed[1]
    x = (x ^ (x >> 16)) * jnp.uint32(_MIX[2])
    return x ^ (x >> 15)


def segment_sums(x: jax.Array, sizes: Sizes) -> jax.Array:
    """int32 sums of consecutive static-size segments (static slices fuse; no scatter-add)."""
    bounds = np.cumsum((0, *sizes))
    pairs = zip(bounds[:-1], bounds[1:], strict=True)
    return jnp.stack([jnp.sum(x[a:b], dtype=jnp.int32) for a, b in pairs])


def expand(per_segment: jax.Array, sizes: Sizes) -> jax.Array:
    """Broadcast one value per segment over that segment's entries."""
    if len(sizes) == 1:
        return jnp.broadcast_to(per_segment[0], sizes)
    return jnp.concatenate([jnp.broadcast_to(per_segment[i], (n,)) for i, n in enumerate(sizes)])


def kth_largest(
    values: jax.Array, k: jax.Array, sizes: Sizes, valid: jax.Array | None = None
) -> jax.Array:
    """Per segment, the largest uint32 ``t`` with ``count(values >= t) >= k`` (bisection)."""

    def step(i: jax.Array, prefix: jax.Array) -> jax.Array:
        candidate = prefix | (jnp.uint32(1) << (31 - i).astype(jnp.uint32))
        hits = values >= expand(candidate, sizes)
        hits = hits if valid is None else hits & valid
        return jnp.where(segment_sums(hits, sizes) >= k, candidate, prefix)

    return lax.fori_loop(0, 32, step, jnp.zeros(len(sizes), jnp.uint32))


def seed_words(key: jax.Array, count: int = 1) -> jax.Array:
    """``count`` pairs of uint32 tie-break seeds from one PRNG call (each call compiles a loop)."""
    return jax.random.bits(key, (count, 2), jnp.uint32)


def top_k_mask(
    major: jax.Array, k: jax.Array | int, seed: jax.Array, sizes: Sizes | None = None
) -> jax.Array:
    """Boolean mask of the ``clip(k, 0, size)`` largest entries of 1-D uint32 ``major``.

    ``sizes`` splits ``major`` into consecutive segments ranked independently (``k`` then holds
    one count per segment); by default the whole array is one segment. Ties in ``major`` are
    broken by :func:`tie_break_bits` from ``seed`` (two uint32 words); that second bisection
    runs only when a tie at a threshold must be split, which continuous scores rarely need.
    """
    sizes = (major.shape[0],) if sizes is None else tuple(sizes)
    k = jnp.clip(jnp.broadcast_to(jnp.asarray(k, jnp.int32), (len(sizes),)), 0, np.array(sizes))
    threshold = expand(kth_largest(major, k, sizes), sizes)
    above = major > threshold
    tied = major == threshold
    rest = k - segment_sums(above, sizes)

    def split_ties() -> jax.Array:
        noise = tie_break_bits(seed, major.shape[0])
        return tied & (noise >= expand(kth_largest(noise, rest, sizes, tied), sizes))

    chosen = lax.cond(jnp.all(segment_sums(tied, sizes) == rest), lambda: tied, split_ties)
    return (above | chosen) & expand(k > 0, sizes)
