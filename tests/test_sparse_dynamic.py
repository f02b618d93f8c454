"""dynamic_sparse is keep_sparse plus drop_grow on a schedule, with the bookkeeping in its state:
the same masks and weights as the functional core driven by hand, step by step."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from adapt_jax import sparse

STEPS = 12
CASES = {
    # name: (inner, dynamic_sparse keyword arguments); update_every=3 in both
    "rigl_global_schedule": (
        lambda: optax.adam(1e-2),
        dict(grow="rigl", scope="global", end_step=8,
             drop_fraction=optax.cosine_decay_schedule(0.4, 8)),
    ),
    "set_layer_float_reset": (
        lambda: optax.sgd(0.1, momentum=0.9),
        dict(grow="set", scope="layer", drop_fraction=0.25, reset_moments_on_grow=True),
    ),
}


def setup():
    keys = jax.random.split(jax.random.key(0), 3)
    params = {
        "Dense_0": {"kernel": jax.random.normal(keys[0], (12, 8)), "bias": jnp.ones(8)},
        "Conv_0": {"kernel": jax.random.normal(keys[1], (3, 3, 2, 4))},
    }
    masks = sparse.init_masks(keys[2], params, 0.3)
    return sparse.apply_masks(params, masks), masks


def grads_at(t, params):
    key = jax.random.fold_in(jax.random.key(1), t)
    return jax.tree.map(lambda p: jax.random.normal(key, p.shape), params)


def by_hand(inner, params, masks, key, kw):
    """The functional core as docs/sparse.md shows it: keep_sparse, then drop_grow when due."""
    opt = sparse.keep_sparse(inner)
    state = opt.init(params)
    value = kw["drop_fraction"]
    fraction = value if callable(value) else (lambda _: value)
    end_step = kw.get("end_step") or STEPS + 1
    step = jax.jit(lambda p, s, g, m: opt.update(g, s, p, masks=m))
    update = jax.jit(sparse.drop_grow, static_argnames=("grow", "scope"))
    history = []
    for t in range(1, STEPS + 1):
        grads = grads_at(t, params)
        updates, state = step(params, state, grads, masks)
        params = optax.apply_updates(params, updates)
        if t % 3 == 0 and t < end_step:
            key, sub = jax.random.split(key)
            old = masks
            params, masks = update(sub, params, old, grads, fraction(t), grow=kw["grow"],
                                   scope=kw["scope"])
            if kw.get("reset_moments_on_grow"):
                state = sparse.reset_moments(state, sparse.grown_entries(old, masks), inner)
        history.append((params, masks))
    return history


@pytest.mark.parametrize("case", CASES)
def test_matches_the_functional_core_step_by_step(case):
    make_inner, kw = CASES[case]
    params, masks = setup()
    key = jax.random.key(2)
    expected = by_hand(make_inner(), params, masks, key, kw)
    tx = sparse.dynamic_sparse(make_inner(), masks, key=key, update_every=3, **kw)
    state = tx.init(params)

    @jax.jit
    def step(params, state, grads):
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    changes = 0
    for t, (want_params, want_masks) in enumerate(expected, start=1):
        old_masks = state.masks
        params, state = step(params, state, grads_at(t, params))
        assert int(state.count) == t
        for m, want in zip(*map(sparse.named_masks, (state.masks, want_masks)), strict=True):
            np.testing.assert_array_equal(m, want)
        for p, want in zip(jax.tree.leaves(params), jax.tree.leaves(want_params), strict=True):
            np.testing.assert_allclose(p, want, rtol=1e-6, atol=1e-6)
        zeroed = sparse.apply_masks(params, state.masks)
        for p, z in zip(jax.tree.leaves(params), jax.tree.leaves(zeroed), strict=True):
            np.testing.assert_array_equal(p, z)  # inactive weights exactly 0, dropped ones too
        changes += sparse.flip_rate(old_masks, state.masks) > 0
    assert changes == len([t for t in range(3, STEPS + 1, 3) if t < kw.get("end_step", 99)])


def test_rejects_bad_arguments():
    params, masks = setup()
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="grow must be one of rigl, set"):
        sparse.dynamic_sparse(optax.sgd(0.1), masks, key=key, update_every=3, grow="random")
    with pytest.raises(ValueError, match="scope must be one of global, layer"):
        sparse.dynamic_sparse(optax.sgd(0.1), masks, key=key, update_every=3, scope="net")
    with pytest.raises(ValueError, match="update_every must be positive"):
        sparse.dynamic_sparse(optax.sgd(0.1), masks, key=key, update_every=0)
    tx = sparse.dynamic_sparse(optax.sgd(0.1), masks, key=key, update_every=3)
    with pytest.raises(ValueError, match="needs params"):
        tx.update(params, tx.init(params))
    with pytest.raises(ValueError):
        tx.init({"Dense_0": params["Dense_0"]})  # masks of another model
