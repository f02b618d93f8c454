"""Drop-fraction schedules against hand values, on the host and inside jit."""

import math

import jax
import jax.numpy as jnp
import pytest

from adapt_jax import sparse

HAND_VALUES = {
    # (name, t): value for initial=0.5, final=0.005, T=1000
    ("cosine", 0): 0.5,
    ("cosine", 500): 0.005 + 0.495 / 2,
    ("cosine", 250): 0.005 + 0.495 * (1 + math.sqrt(0.5)) / 2,
    ("cosine", 1000): 0.005,
    ("cosine", 5000): 0.005,  # clipped at T
    ("linear", 0): 0.5,
    ("linear", 250): 0.375,
    ("linear", 1000): 0.0,
    ("constant", 0): 0.5,
    ("constant", 777): 0.5,
}


@pytest.mark.parametrize(("name", "t"), list(HAND_VALUES))
def test_schedule_hand_values(name, t):
    schedule = sparse.drop_fraction_schedule(name, 0.5, 1000)
    value = schedule(t)
    assert isinstance(value, float)
    assert value == pytest.approx(HAND_VALUES[name, t], abs=1e-12)
    traced = jax.jit(schedule)(jnp.int32(t))
    assert float(traced) == pytest.approx(HAND_VALUES[name, t], abs=1e-6)


def test_schedule_rejects_bad_arguments():
    with pytest.raises(ValueError, match="cosine, linear, constant"):
        sparse.drop_fraction_schedule("step", 0.5, 10)
    with pytest.raises(ValueError, match="total_steps"):
        sparse.drop_fraction_schedule("cosine", 0.5, 0)
