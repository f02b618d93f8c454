"""Drop-fraction schedules are optax schedules: hand values, the formula the trainer has always
used (within float32 rounding), and use inside jit."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from adapt_jax import sparse

HAND_VALUES = {
    # (name, t): value for initial=0.5, final=0.005, T=1000
    ("cosine", 0): 0.5,
    ("cosine", 500): 0.005 + 0.495 / 2,
    ("cosine", 250): 0.005 + 0.495 * (1 + math.sqrt(0.5)) / 2,
    ("cosine", 1000): 0.005,
    ("cosine", 5000): 0.005,  # held after T
    ("linear", 0): 0.5,
    ("linear", 250): 0.375,
    ("linear", 1000): 0.0,
    ("constant", 0): 0.5,
    ("constant", 777): 0.5,
}


def float64_formula(name, initial, total, t, final=0.005):
    """The schedule as the trainer computed it before (float64 on the host)."""
    progress = np.clip(np.asarray(t, np.float64) / total, 0.0, 1.0)
    if name == "cosine":
        return final + (initial - final) * (1.0 + np.cos(np.pi * progress)) / 2.0
    if name == "linear":
        return (1.0 - progress) * initial
    return initial + 0.0 * progress


@pytest.mark.parametrize(("name", "t"), list(HAND_VALUES))
def test_schedule_hand_values(name, t):
    schedule = sparse.drop_fraction_schedule(name, 0.5, 1000)
    assert float(schedule(t)) == pytest.approx(HAND_VALUES[name, t], abs=1e-7)
    assert float(jax.jit(schedule)(jnp.int32(t))) == pytest.approx(HAND_VALUES[name, t], abs=1e-7)


@pytest.mark.parametrize("name", sparse._schedules.SCHEDULES)
@pytest.mark.parametrize(("initial", "total"), [(0.5, 1000), (0.05, 7), (0.3, 30000), (0.0, 50)])
def test_schedule_matches_the_float64_formula(name, initial, total):
    """What reaches the jitted step (a float32) moves by at most 1e-7 from the old host value."""
    schedule = sparse.drop_fraction_schedule(name, initial, total)
    ts = np.unique(np.linspace(0, 2 * total, 4001).astype(np.int64))
    expected = float64_formula(name, initial, total, ts)
    traced = np.asarray(jax.jit(jax.vmap(schedule))(jnp.asarray(ts, jnp.int32)), np.float64)
    np.testing.assert_allclose(traced, expected, rtol=0, atol=1e-7)
    for t in ts[:: max(1, len(ts) // 25)]:  # the trainer calls it eagerly with a Python int
        assert abs(float(jnp.float32(schedule(int(t)))) - expected[ts == t][0]) <= 1e-7


def test_cosine_is_optax_cosine_decay():
    schedule = sparse.drop_fraction_schedule("cosine", 0.5, 1000, final=0.01)
    reference = optax.cosine_decay_schedule(0.49, 1000)
    steps = jnp.arange(0, 1200, 7)
    np.testing.assert_array_equal(jax.vmap(schedule)(steps), jax.vmap(reference)(steps) + 0.01)


def test_schedule_rejects_bad_arguments():
    with pytest.raises(ValueError, match="cosine, linear, constant"):
        sparse.drop_fraction_schedule("step", 0.5, 10)
    with pytest.raises(ValueError, match="total_steps"):
        sparse.drop_fraction_schedule("cosine", 0.5, 0)
