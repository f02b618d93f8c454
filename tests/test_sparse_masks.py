"""Mask pytrees: naming, maskable selection, exact-count init, apply/count helpers."""

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapt_jax import sparse


class Block(NamedTuple):
    kernel: jax.Array
    bias: jax.Array


def flax_like_params():
    ones = jnp.ones
    return {
        "Conv_0": {"kernel": ones((3, 3, 4, 8)), "bias": ones(8)},
        "Dense_0": {"kernel": ones((32, 16)), "bias": ones(16)},
        "BatchNorm_0": {"scale": ones(16), "bias": ones(16)},
        "Embed_0": {"embedding": ones((10, 16))},
        "blocks": [Block(ones((5, 7)), ones(7)), Block(ones((2, 2, 3, 5)), ones(5))],
    }


def test_names_and_maskable_selection():
    shapes = sparse.maskable_shapes(flax_like_params())
    assert shapes == {
        "Conv_0/kernel": (3, 3, 4, 8),
        "Dense_0/kernel": (32, 16),
        "blocks/0/kernel": (5, 7),
        "blocks/1/kernel": (2, 2, 3, 5),
    }
    assert not sparse.default_is_maskable("Dense_0/kernel", jnp.ones(4))  # 1-D kernel
    assert not sparse.default_is_maskable("Embed_0/embedding", jnp.ones((4, 4)))
    custom = sparse.maskable_shapes(flax_like_params(), lambda name, x: "Embed" in name)
    assert custom == {"Embed_0/embedding": (10, 16)}


def test_path_str():
    paths = [p for p, _ in jax.tree_util.tree_flatten_with_path(flax_like_params())[0]]
    names = [sparse.path_str(p) for p in paths]
    assert "BatchNorm_0/scale" in names and "blocks/1/bias" in names


def test_init_masks_structure_and_counts():
    params = flax_like_params()
    masks = sparse.init_masks(jax.random.key(0), params, 0.3)
    counts = sparse.layer_counts(sparse.maskable_shapes(params), 0.3)
    assert masks["Dense_0"]["bias"] is None and masks["Embed_0"]["embedding"] is None
    assert isinstance(masks["blocks"][1], Block) and masks["blocks"][1].bias is None
    assert masks["Conv_0"]["kernel"].dtype == jnp.bool_
    stats = sparse.density_stats(masks)
    assert isinstance(stats, sparse.DensityStats)
    assert stats.layers == {
        k: c / math.prod(s)
        for (k, c), s in zip(counts.items(), sparse.maskable_shapes(params).values(), strict=True)
    }
    assert stats.layer_active == dict(counts)
    assert stats.active == int(sparse.count_active(masks)) == sum(counts.values())
    assert stats.maskable == sparse.count_maskable(masks) == 288 + 512 + 35 + 60
    assert stats.density == stats.active / stats.maskable


def test_init_masks_is_random_but_keyed():
    params = flax_like_params()
    a = sparse.init_masks(jax.random.key(0), params, 0.3)
    b = sparse.init_masks(jax.random.key(0), params, 0.3)
    c = sparse.init_masks(jax.random.key(1), params, 0.3)
    assert jax.tree.all(jax.tree.map(lambda x, y: bool((x == y).all()), a, b))
    assert not bool((a["Dense_0"]["kernel"] == c["Dense_0"]["kernel"]).all())


@pytest.mark.parametrize("density", [0.0, 1.01, -1.0])
def test_init_masks_rejects_density(density):
    with pytest.raises(ValueError, match=r"density must be in \(0, 1\], got"):
        sparse.init_masks(jax.random.key(0), flax_like_params(), density)


def test_apply_count_and_grown():
    params = flax_like_params()
    masks = sparse.init_masks(jax.random.key(0), params, 0.25)
    masked = jax.jit(sparse.apply_masks)(params, masks)
    kernel, mask = masked["Dense_0"]["kernel"], masks["Dense_0"]["kernel"]
    assert bool((kernel[~mask] == 0).all()) and bool((kernel[mask] == 1).all())
    assert bool((masked["Embed_0"]["embedding"] == 1).all())
    assert int(jax.jit(sparse.count_active)(masks)) == sum(
        int(m.sum()) for m in jax.tree.leaves(masks)
    )
    other = sparse.init_masks(jax.random.key(5), params, 0.25)
    grown = sparse.grown_entries(masks, other)
    assert grown["Dense_0"]["bias"] is None
    np.testing.assert_array_equal(
        grown["Dense_0"]["kernel"], np.asarray(other["Dense_0"]["kernel"]) & ~np.asarray(mask)
    )


# init compiles one program per model structure (counts are traced), so the examples draw from
# a few structures and vary what matters to the counts: density, distribution and key
STRUCTURES = [
    [(17, 9), (3, 3, 2, 9)],
    [(2, 2), (40, 1), (1, 1, 5, 7), (3, 3, 9, 9)],
    [(1, 1)],
]


@settings(max_examples=25, deadline=None)
@given(
    structure=st.sampled_from(STRUCTURES),
    density=st.floats(0.01, 1.0),
    distribution=st.sampled_from(["erk", "er", "uniform"]),
    seed=st.integers(0, 2**31 - 1),
)
def test_init_masks_exact_counts_property(structure, density, distribution, seed):
    params = {
        f"Layer_{i}": {"kernel": jnp.zeros(s), "bias": jnp.zeros(s[-1])}
        for i, s in enumerate(structure)
    }
    masks = sparse.init_masks(jax.random.key(seed), params, density, distribution)
    counts = sparse.layer_counts(sparse.maskable_shapes(params), density, distribution)
    for i in range(len(structure)):
        assert int(masks[f"Layer_{i}"]["kernel"].sum()) == counts[f"Layer_{i}/kernel"]
        assert masks[f"Layer_{i}"]["bias"] is None
    total = sum(math.prod(s) for s in structure)
    assert int(sparse.count_active(masks)) == round(density * total)


def test_init_masks_positions_are_uniform():
    """Each entry of a 10x10 leaf at 20% density is active about 20% of the time over 400 keys."""
    params = {"Dense_0": {"kernel": jnp.zeros((10, 10))}}
    hits = sum(
        np.asarray(sparse.init_masks(jax.random.key(s), params, 0.2)["Dense_0"]["kernel"], int)
        for s in range(400)
    )
    assert hits.sum() == 400 * 20
    # binomial(400, 0.2): sd 8; allow ~4.5 sd for the extreme entry out of 100
    assert np.abs(hits - 80).max() < 36, hits


def test_no_maskable_leaves():
    masks = sparse.init_masks(jax.random.key(0), {"Norm_0": {"scale": jnp.ones(3)}}, 0.5)
    assert masks == {"Norm_0": {"scale": None}}
    assert int(sparse.count_active(masks)) == 0 and sparse.count_maskable(masks) == 0
