"""Resize to a traced target count, and one compilation for any count or drop fraction."""

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from test_sparse_drop_grow import (
    assert_dense_leaves_untouched,
    assert_values,
    groups,
    make_state,
    slots,
    state_st,
)

from adapt_jax import sparse

RESIZE = jax.jit(sparse.resize, static_argnames=("grow",))


@settings(max_examples=25, deadline=None)
@given(**state_st, target_fraction=st.floats(-0.1, 1.1), grow=st.sampled_from(["rigl", "set"]))
def test_resize_properties(template_id, seed, density, ties, target_fraction, grow):
    params, masks, grads = make_state(template_id, seed, density, ties)
    maskable = sparse.count_maskable(masks)
    target = int(round(target_fraction * maskable))
    new_params, new_masks = RESIZE(
        jax.random.key(seed),
        params,
        masks,
        grads if grow == "rigl" else None,
        jnp.int32(target),
        grow=grow,
    )
    assert_dense_leaves_untouched(masks, params, new_params, new_masks)
    ((old, new, w_old, w_new, g),) = groups(slots(masks, new_masks, params, new_params, grads), "")
    assert new.sum() == np.clip(target, 0, maskable)
    assert_values(old, new, w_old, w_new)
    if new.sum() >= old.sum():
        assert not (old & ~new).any()  # growing never drops
        grown = new & ~old
        if grow == "rigl" and grown.any() and (~new).any():
            assert np.abs(g[grown]).min() >= np.abs(g[~new]).max()
    else:
        assert not (new & ~old).any()  # shrinking never grows
        pruned = old & ~new
        if new.any():
            assert np.abs(w_old[pruned]).max() <= np.abs(w_old[new]).min()


def test_one_compile_for_many_counts_and_fractions():
    params, masks, grads = make_state(0, 3, 0.3, False)
    key = jax.random.key(0)

    # fresh function objects: jit's compile cache is shared by every jit of the same function
    def resize(key, params, masks, grads, target, grow="rigl"):
        return sparse.resize(key, params, masks, grads, target, grow=grow)

    def drop_grow(key, params, masks, grads, fraction, scope="global"):
        return sparse.drop_grow(key, params, masks, grads, fraction, scope=scope)

    resize = jax.jit(resize, static_argnames=("grow",))
    drop_grow = jax.jit(drop_grow, static_argnames=("scope",))
    for target in [0, 50, 200, 400, 700, 10_000]:
        _, new = resize(key, params, masks, grads, jnp.int32(target))
        assert int(sparse.count_active(new)) == min(target, sparse.count_maskable(masks))
    for fraction in [0.0, 0.05, 0.1, 0.3, 0.5, 1.0]:
        drop_grow(key, params, masks, grads, jnp.float32(fraction))
    assert resize._cache_size() == 1 and drop_grow._cache_size() == 1
    # the counter does see a recompile (a new static argument)
    resize(key, params, masks, grads, jnp.int32(5), grow="set")
    drop_grow(key, params, masks, grads, jnp.float32(0.2), scope="layer")
    assert resize._cache_size() == 2 and drop_grow._cache_size() == 2
