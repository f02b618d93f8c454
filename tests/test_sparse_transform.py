"""keep_sparse keeps inactive weights at exactly 0 for any optimizer; reset_moments hits only
the grown entries of every params-shaped optimizer leaf."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapt_jax import sparse

OPTIMIZERS = {
    "adam": lambda: optax.adam(1e-2),
    "sgd_momentum": lambda: optax.sgd(0.1, momentum=0.9),
    "adamw": lambda: optax.adamw(1e-2, weight_decay=0.1),
}

CLOSE = dict(rtol=1e-5, atol=1e-5)  # same arithmetic, different fusion: float32 rounding only


def setup(seed=0, density=0.3):
    keys = jax.random.split(jax.random.key(seed), 4)
    params = {
        "Dense_0": {"kernel": jax.random.normal(keys[0], (12, 8)), "bias": jnp.ones(8)},
        "Conv_0": {"kernel": jax.random.normal(keys[1], (3, 3, 2, 4))},
    }
    masks = sparse.init_masks(keys[2], params, density)
    return sparse.apply_masks(params, masks), masks, keys[3]


def train(opt, params, masks, key, steps=50):
    """Dense random gradients each step, so inactive entries are pushed every time."""
    state = opt.init(params)

    @jax.jit
    def step(params, state, key):
        grads = jax.tree.map(lambda p: jax.random.normal(key, p.shape), params)
        if masks is None:
            updates, state = opt.update(grads, state, params)
        else:
            updates, state = opt.update(grads, state, params, masks=masks)
        return optax.apply_updates(params, updates), state

    for k in jax.random.split(key, steps):
        params, state = step(params, state, k)
    return params, state


def inactive_values(params, masks):
    return np.concatenate(
        [
            np.asarray(p)[~np.asarray(m)]
            for m, p in zip(*map(sparse_leaves, (masks, params)), strict=True)
        ]
    )


def sparse_leaves(tree):
    return [tree["Dense_0"]["kernel"], tree["Conv_0"]["kernel"]]


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_keep_sparse_keeps_inactive_exactly_zero(name):
    params, masks, key = setup()
    trained, _ = train(sparse.keep_sparse(OPTIMIZERS[name]()), params, masks, key)
    assert np.all(inactive_values(trained, masks) == 0.0)
    # active entries and dense leaves did train, exactly as the plain optimizer trains them
    plain, _ = train(OPTIMIZERS[name](), params, None, key)
    for m, p, q in zip(*map(sparse_leaves, (masks, trained, plain)), strict=True):
        m = np.asarray(m)
        np.testing.assert_allclose(np.asarray(p)[m], np.asarray(q)[m], **CLOSE)
    np.testing.assert_allclose(trained["Dense_0"]["bias"], plain["Dense_0"]["bias"], **CLOSE)
    # ... and without the wrapper the same run revives inactive weights (the test can fail)
    assert np.abs(inactive_values(plain, masks)).min() > 0.0


def test_keep_sparse_in_a_chain_with_extra_args():
    params, masks, key = setup()
    opt = optax.chain(optax.clip_by_global_norm(1.0), sparse.keep_sparse(optax.adam(1e-2)))
    trained, _ = train(opt, params, masks, key, steps=5)
    assert np.all(inactive_values(trained, masks) == 0.0)


def test_keep_sparse_needs_params():
    params, masks, _ = setup()
    opt = sparse.keep_sparse(optax.adam(1e-2))
    with pytest.raises(ValueError, match="params"):
        opt.update(params, opt.init(params), None, masks=masks)


@pytest.mark.parametrize("name", OPTIMIZERS)
@pytest.mark.parametrize("pass_optimizer", [False, True])
def test_reset_moments_zeroes_exactly_grown_entries(name, pass_optimizer):
    params, masks, key = setup()
    opt = sparse.keep_sparse(OPTIMIZERS[name]())
    params, state = train(opt, params, masks, key, steps=3)
    grown = sparse.grown_entries(masks, sparse.init_masks(jax.random.key(9), params, 0.5))
    reset = sparse.reset_moments(state, grown, opt if pass_optimizer else None)
    moment_trees = [
        (before, after)
        for before, after in zip(
            jax.tree.leaves(state, is_leaf=lambda x: isinstance(x, dict)),
            jax.tree.leaves(reset, is_leaf=lambda x: isinstance(x, dict)),
            strict=True,
        )
        if isinstance(before, dict)
    ]
    assert len(moment_trees) == {"adam": 2, "sgd_momentum": 1, "adamw": 2}[name]
    for before, after in moment_trees:
        for g, b, a in zip(*map(sparse_leaves, (grown, before, after)), strict=True):
            g, b, a = map(np.asarray, (g, b, a))
            assert np.all(a[g] == 0.0) and np.all(b[g] != 0.0)
            np.testing.assert_array_equal(a[~g], b[~g])
        np.testing.assert_array_equal(before["Dense_0"]["bias"], after["Dense_0"]["bias"])
    # non-params leaves (step counts) are untouched
    counts = lambda s: [x for x in jax.tree.leaves(s) if jnp.ndim(x) == 0]
    assert counts(reset) == counts(state)


@settings(max_examples=12, deadline=None)
@given(name=st.sampled_from(sorted(OPTIMIZERS)), density=st.floats(0.05, 0.95),
       fraction=st.floats(0.0, 1.0), seed=st.integers(0, 2**31 - 1))
def test_property_masked_entries_stay_zero_through_a_mask_change(name, density, fraction, seed):
    """Random densities, drop fractions and data; 25 steps, a RigL drop/grow, 25 more steps:
    every entry inactive under the mask in force is exactly zero at the end."""
    params, masks, key = setup(seed % 1000, density)
    opt = sparse.keep_sparse(OPTIMIZERS[name]())
    state = opt.init(params)

    @jax.jit
    def step(params, state, masks, key):
        grads = jax.tree.map(lambda p: jax.random.normal(key, p.shape), params)
        updates, state = opt.update(grads, state, params, masks=masks)
        return optax.apply_updates(params, updates), state

    keys = jax.random.split(jax.random.key(seed), 51)
    for i in range(50):
        if i == 25:
            grads = jax.tree.map(lambda p: jax.random.normal(keys[50], p.shape), params)
            params, masks = sparse.drop_grow(keys[50], params, masks, grads, fraction)
        params, state = step(params, state, masks, keys[i])
    assert np.all(inactive_values(params, masks) == 0.0)
