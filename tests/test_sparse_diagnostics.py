"""ITOP rate and flip rate on scripted mask sequences with known answers."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from adapt_jax import sparse


def masks_from(bits_a, bits_b):
    """A two-leaf masks tree (plus a dense leaf) from 0/1 strings."""
    to_mask = lambda bits, shape: jnp.asarray([c == "1" for c in bits]).reshape(shape)
    return {"a": {"kernel": to_mask(bits_a, (2, 4)), "bias": None}, "b": to_mask(bits_b, (2, 2))}


SEQUENCE = [
    masks_from("11000000", "1000"),  # 3 active of 12
    masks_from("01100000", "1000"),  # a: one moved
    masks_from("01100000", "0100"),  # b: one moved
    masks_from("11000000", "1000"),  # back to the start: nothing new
]


def test_itop_rate_on_script():
    ever = None
    rates = []
    for masks in SEQUENCE:
        ever = jax.jit(sparse.update_ever_active)(ever, masks) if ever else masks
        rates.append(sparse.itop_rate(ever))
    assert rates == pytest.approx([3 / 12, 4 / 12, 5 / 12, 5 / 12])
    assert ever["a"]["bias"] is None
    assert sparse.update_ever_active(None, SEQUENCE[0]) is SEQUENCE[0]


def test_flip_rate_on_script():
    flips = [sparse.flip_rate(a, b) for a, b in zip(SEQUENCE, SEQUENCE[1:], strict=False)]
    assert flips == pytest.approx([2 / 3, 2 / 3, 4 / 3])
    assert sparse.flip_rate(SEQUENCE[0], SEQUENCE[0]) == 0.0


def test_flip_rate_is_twice_the_drop_fraction_without_regrowth():
    rng = np.random.default_rng(0)
    old = rng.random((20, 20)) < 0.2
    new = old.copy()
    on, off = np.flatnonzero(old)[:10], np.flatnonzero(~old)[:10]
    new.flat[on], new.flat[off] = False, True
    rate = sparse.flip_rate({"kernel": jnp.asarray(old)}, {"kernel": jnp.asarray(new)})
    assert rate == pytest.approx(2 * 10 / old.sum())
