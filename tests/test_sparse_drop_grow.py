"""Drop/grow on random pytrees: exact counts, who is dropped and grown, and the values."""

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from adapt_jax import sparse

# Two fixed structures (mixed 2-D/4-D kernels, dense leaves, a list container, a tiny leaf) keep
# the number of compilations small; values, densities, fractions and keys vary per example.
TEMPLATES = [
    {
        "Conv_0": {"kernel": (3, 3, 4, 8), "bias": (8,)},
        "Dense_0": {"kernel": (32, 16), "bias": (16,)},
        "Norm_0": {"scale": (16,)},
        "Dense_1": {"kernel": (16, 3)},
    },
    {
        "blocks": [{"kernel": (5, 7)}, {"kernel": (2, 2, 3, 5), "bias": (5,)}],
        "head": {"kernel": (2, 3)},
    },
]
DROP_GROW = jax.jit(sparse.drop_grow, static_argnames=("grow", "scope"))


def make_state(template_id, seed, density, ties):
    """Masked params, masks and dense grads for one template; ``ties`` quantizes w and g."""
    rng = np.random.default_rng(seed)
    shapes = TEMPLATES[template_id]
    is_shape = lambda x: isinstance(x, tuple)

    def draw(shape):
        x = rng.standard_normal(shape).astype(np.float32)
        return jnp.asarray(np.round(x * 2) / 2 if ties else x)

    params = jax.tree.map(draw, shapes, is_leaf=is_shape)
    grads = jax.tree.map(draw, shapes, is_leaf=is_shape)
    masks = sparse.init_masks(jax.random.key(seed), params, density)
    return sparse.apply_masks(params, masks), masks, grads


def slots(masks, *trees):
    """Per maskable leaf: (mask, *tree leaves) as flat numpy arrays."""
    m_leaves, treedef = jax.tree.flatten(masks, is_leaf=sparse.is_leaf)
    flat = [treedef.flatten_up_to(t) for t in trees]
    return [
        [np.asarray(m).ravel()] + [np.asarray(f[i]).ravel() for f in flat]
        for i, m in enumerate(m_leaves)
        if m is not None
    ]


def groups(per_leaf, scope):
    """Concatenate leaves into one group (global) or keep one group per leaf (layer)."""
    if scope == "layer":
        return per_leaf
    return [[np.concatenate(parts) for parts in zip(*per_leaf, strict=True)]]


def assert_dense_leaves_untouched(masks, old_params, new_params, new_masks):
    for m, old, new, nm in zip(
        *(jax.tree.leaves(t, is_leaf=sparse.is_leaf) for t in (masks, old_params)),
        jax.tree.leaves(new_params),
        jax.tree.leaves(new_masks, is_leaf=sparse.is_leaf),
        strict=True,
    ):
        if m is None:
            assert nm is None
            np.testing.assert_array_equal(old, new)


def assert_values(old, new, w_old, w_new):
    """Survivors keep their value; everything else (grown, dropped, inactive) is exactly 0."""
    np.testing.assert_array_equal(w_new, np.where(old & new, w_old, 0.0))


state_st = dict(
    template_id=st.integers(0, len(TEMPLATES) - 1),
    seed=st.integers(0, 2**31 - 1),
    density=st.floats(0.05, 0.95),
    ties=st.booleans(),
)


@settings(max_examples=25, deadline=None)
@given(
    **state_st,
    fraction=st.floats(0.0, 1.0),
    grow=st.sampled_from(["rigl", "set"]),
    scope=st.sampled_from(["global", "layer"]),
)
def test_drop_grow_properties(template_id, seed, density, ties, fraction, grow, scope):
    params, masks, grads = make_state(template_id, seed, density, ties)
    new_params, new_masks = DROP_GROW(
        jax.random.key(seed + 1),
        params,
        masks,
        grads,
        jnp.float32(fraction),
        grow=grow,
        scope=scope,
    )
    assert_dense_leaves_untouched(masks, params, new_params, new_masks)
    per_leaf = slots(masks, new_masks, params, new_params, grads)
    for old, new, w_old, w_new, g in groups(per_leaf, scope):
        nnz = int(old.sum())
        n_drop = int(sparse.num_to_drop(jnp.int32(nnz), jnp.float32(fraction)))
        assert n_drop == np.floor(np.float32(nnz) * np.float32(fraction))
        dropped, grown = old & ~new, new & ~old
        assert new.sum() == nnz
        assert dropped.sum() == grown.sum() <= n_drop
        assert_values(old, new, w_old, w_new)
        if dropped.any():
            # survivors smaller than a dropped weight can only be the dropped-and-regrown ones
            smaller = old & new & (np.abs(w_old) < np.abs(w_old[dropped]).max())
            assert smaller.sum() <= n_drop - dropped.sum()
        if grow == "rigl" and grown.any() and (~new).any():
            assert np.abs(g[grown]).min() >= np.abs(g[~new]).max()


@settings(max_examples=25, deadline=None)
@given(**state_st, fraction=st.floats(0.0, 1.0))
def test_rigl_drops_exactly_smallest_and_grows_largest(template_id, seed, density, ties, fraction):
    """Gradients zero on active entries, so nothing dropped is regrown: every count is visible."""
    params, masks, grads = make_state(template_id, seed, min(density, 0.5), ties)
    grads = sparse.tree_map(
        lambda m, g: g if m is None else jnp.where(m, 0.0, 1.0 + jnp.abs(g)), masks, grads
    )
    new_params, new_masks = DROP_GROW(
        jax.random.key(seed),
        params,
        masks,
        grads,
        jnp.float32(fraction),
        grow="rigl",
        scope="global",
    )
    ((old, new, w_old, w_new, g),) = groups(slots(masks, new_masks, params, new_params, grads), "")
    n_drop = int(sparse.num_to_drop(jnp.int32(old.sum()), jnp.float32(fraction)))
    dropped, grown = old & ~new, new & ~old
    assert dropped.sum() == grown.sum() == n_drop
    assert_values(old, new, w_old, w_new)
    if 0 < n_drop < old.sum():
        assert np.abs(w_old[dropped]).max() <= np.abs(w_old[old & new]).min()
    if n_drop and (~old & ~new).any():
        assert g[grown].min() >= g[~old & ~new].max()


def test_set_growth_depends_on_key():
    params, masks, _ = make_state(0, 0, 0.3, False)
    _, a = DROP_GROW(jax.random.key(1), params, masks, None, jnp.float32(0.5), grow="set")
    _, b = DROP_GROW(jax.random.key(2), params, masks, None, jnp.float32(0.5), grow="set")
    assert not bool((a["Dense_0"]["kernel"] == b["Dense_0"]["kernel"]).all())


def test_rigl_without_grads_is_an_error():
    params, masks, _ = make_state(0, 0, 0.3, False)
    for call in (
        lambda: sparse.drop_grow(jax.random.key(0), params, masks, None, 0.3),
        lambda: sparse.resize(jax.random.key(0), params, masks, None, 10),
    ):
        try:
            call()
        except ValueError as err:
            assert "grads" in str(err)
        else:
            raise AssertionError("expected ValueError")
