"""Losses against values computed by hand."""

import math

import jax.numpy as jnp
import numpy as np
import pytest

from adapt_jax.gan import losses

REAL = jnp.array([2.0, 0.5, -1.0])
FAKE = jnp.array([-2.0, 0.0, 1.5])


def _softplus(v: float) -> float:
    return math.log1p(math.exp(v))


def test_names():
    assert losses.LOSSES == ("hinge", "ns", "wasserstein")


def test_hinge():
    # relu(1 - r) = [0, .5, 2]; relu(1 + f) = [0, 1, 2.5]
    np.testing.assert_allclose(losses.d_loss("hinge", REAL, FAKE), 2.5 / 3 + 3.5 / 3, rtol=1e-6)
    np.testing.assert_allclose(losses.g_loss("hinge", FAKE), 0.5 / 3, rtol=1e-6)


def test_non_saturating():
    d = np.mean([_softplus(-r) for r in (2.0, 0.5, -1.0)])
    d += np.mean([_softplus(f) for f in (-2.0, 0.0, 1.5)])
    np.testing.assert_allclose(losses.d_loss("ns", REAL, FAKE), d, rtol=1e-6)
    g = np.mean([_softplus(-f) for f in (-2.0, 0.0, 1.5)])
    np.testing.assert_allclose(losses.g_loss("ns", FAKE), g, rtol=1e-6)
    # equals binary cross-entropy with labels real=1, fake=0
    sig = lambda v: 1 / (1 + math.exp(-v))
    bce = -np.mean([math.log(sig(r)) for r in (2.0, 0.5, -1.0)])
    bce -= np.mean([math.log(1 - sig(f)) for f in (-2.0, 0.0, 1.5)])
    np.testing.assert_allclose(losses.d_loss("ns", REAL, FAKE), bce, rtol=1e-5)


def test_non_saturating_is_finite_for_huge_logits():
    big = jnp.array([1e4, -1e4])
    assert np.isfinite(float(losses.d_loss("ns", big, big)))
    assert np.isfinite(float(losses.g_loss("ns", big)))


def test_wasserstein():
    np.testing.assert_allclose(
        losses.d_loss("wasserstein", REAL, FAKE), -0.5 / 3 - 1.5 / 3, rtol=1e-6
    )
    np.testing.assert_allclose(losses.g_loss("wasserstein", FAKE), 0.5 / 3, rtol=1e-6)


def test_unequal_batch_sizes():
    assert losses.d_loss("hinge", REAL[:2], FAKE).shape == ()


def test_unknown_name():
    with pytest.raises(ValueError, match="hinge, ns, wasserstein"):
        losses.d_loss("lsgan", REAL, FAKE)
    with pytest.raises(ValueError, match="valid"):
        losses.g_loss("lsgan", FAKE)
