"""Per-layer densities (uniform/ER/ERK) and exact integer counts, against hand-written numpy."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapt_jax import sparse

SNGAN_D_LIKE = {
    "block1/conv1/kernel": (3, 3, 3, 128),
    "block1/conv2/kernel": (3, 3, 128, 128),
    "block1/shortcut/kernel": (1, 1, 3, 128),
    "block2/conv1/kernel": (3, 3, 128, 128),
    "head/kernel": (128, 1),
}


def erk_reference(shapes, density):
    """Straight transcription of the reference's ERK loop (sparselearning Masking.init)."""
    dense = set()
    while True:
        divisor = 0.0
        rhs = 0.0
        raw = {}
        for name, shape in shapes.items():
            n_param = np.prod(shape)
            if name in dense:
                rhs -= (1 - density) * n_param
            else:
                rhs += density * n_param
                raw[name] = np.sum(shape) / np.prod(shape)
                divisor += raw[name] * n_param
        epsilon = rhs / divisor
        max_prob = max(raw.values()) * epsilon
        if max_prob > 1:
            for name, r in raw.items():
                if r * epsilon == max_prob:
                    dense.add(name)
        else:
            break
    return {name: 1.0 if name in dense else epsilon * raw[name] for name in shapes}


@pytest.mark.parametrize("density", [0.05, 0.1, 0.3, 0.5, 0.9])
def test_erk_matches_reference_loop(density):
    ours = sparse.erk_densities(SNGAN_D_LIKE, density)
    ref = erk_reference(SNGAN_D_LIKE, density)
    assert list(ours) == list(SNGAN_D_LIKE)
    np.testing.assert_allclose([ours[k] for k in ref], list(ref.values()), rtol=1e-12)
    total = sum(ours[k] * math.prod(s) for k, s in SNGAN_D_LIKE.items())
    assert total == pytest.approx(density * sum(math.prod(s) for s in SNGAN_D_LIKE.values()))


def test_erk_fix_up_makes_small_layers_dense():
    densities = sparse.erk_densities(SNGAN_D_LIKE, 0.1)
    # three rounds of fix-up (head, then the 1x1 shortcut, then the RGB conv) leave the two
    # big convs to carry the rest of the budget
    small = ["head/kernel", "block1/shortcut/kernel", "block1/conv1/kernel"]
    assert [densities[k] for k in small] == [1.0, 1.0, 1.0]
    assert 0.0 < densities["block1/conv2/kernel"] == densities["block2/conv1/kernel"] < 0.1


def test_erk_power_scale_zero_is_uniform():
    densities = sparse.erk_densities(SNGAN_D_LIKE, 0.2, power_scale=0.0)
    np.testing.assert_allclose(list(densities.values()), 0.2)


def test_er_uses_last_two_dims():
    shapes = {"conv/kernel": (3, 3, 16, 32), "dense/kernel": (64, 16)}
    densities = sparse.er_densities(shapes, 0.1)
    raw = {"conv/kernel": 48 / 512, "dense/kernel": 80 / 1024}
    assert densities["conv/kernel"] / densities["dense/kernel"] == pytest.approx(
        raw["conv/kernel"] / raw["dense/kernel"]
    )


def test_uniform_and_dispatch():
    assert sparse.layer_densities(SNGAN_D_LIKE, 0.3, "uniform") == dict.fromkeys(SNGAN_D_LIKE, 0.3)
    assert sparse.layer_densities(SNGAN_D_LIKE, 0.3) == sparse.erk_densities(SNGAN_D_LIKE, 0.3)
    with pytest.raises(ValueError, match="erk, uniform"):
        sparse.layer_densities(SNGAN_D_LIKE, 0.3, "bernoulli")


@pytest.mark.parametrize("density", [0.0, -0.1, 1.5, float("nan")])
@pytest.mark.parametrize("fn", [sparse.layer_counts, sparse.erk_densities, sparse.er_densities])
def test_density_out_of_range(fn, density):
    with pytest.raises(ValueError, match=r"density must be in \(0, 1\], got"):
        fn(SNGAN_D_LIKE, density)


def test_density_one_is_all_dense():
    assert sparse.layer_counts(SNGAN_D_LIKE, 1.0) == {
        k: math.prod(s) for k, s in SNGAN_D_LIKE.items()
    }


window = st.sampled_from([1, 3])
shape_st = st.one_of(
    st.tuples(st.integers(1, 40), st.integers(1, 40)),
    st.tuples(window, window, st.integers(1, 9), st.integers(1, 9)),
)


@settings(max_examples=50, deadline=None)
@given(
    shapes=st.lists(shape_st, min_size=1, max_size=6),
    density=st.floats(0.001, 1.0),
    distribution=st.sampled_from(["erk", "er", "uniform"]),
)
def test_layer_counts_exact(shapes, density, distribution):
    shapes = {f"l{i}/kernel": s for i, s in enumerate(shapes)}
    counts = sparse.layer_counts(shapes, density, distribution)
    total = sum(math.prod(s) for s in shapes.values())
    assert list(counts) == list(shapes)
    assert sum(counts.values()) == round(density * total)
    densities = sparse.layer_densities(shapes, density, distribution)
    for name, shape in shapes.items():
        assert 0 <= counts[name] <= math.prod(shape)
        # rounding moves a layer by less than one entry per layer from its real-valued share
        assert abs(counts[name] - densities[name] * math.prod(shape)) < len(shapes) + 1
