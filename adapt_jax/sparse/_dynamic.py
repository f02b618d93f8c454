"""The stateful form: an optax transform that owns the masks and runs RigL/SET on a schedule.

``keep_sparse`` takes the masks as an argument, which suits a trainer that changes them itself
(ADAPT's density controller does). Most users want what flax's ``TrainState.apply_gradients``
can drive unchanged: the masks, a step count and a PRNG key in the optimizer state, and the
drop/grow inside ``update`` behind a ``lax.cond``, with every count traced, so one compiled step
serves every iteration.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from adapt_jax.sparse._drop_grow import GROW_MODES, SCOPES, check_choice, drop_grow
from adapt_jax.sparse._masks import grown_entries
from adapt_jax.sparse._schedules import as_schedule
from adapt_jax.sparse._transform import reset_moments, zeroing_updates
from adapt_jax.sparse._tree import PyTree, flatten_like, tree_map


class DynamicSparseState(NamedTuple):
    """State of :func:`dynamic_sparse`; read the current masks as ``opt_state.masks``."""

    inner_state: optax.OptState
    masks: PyTree  # bool arrays at maskable leaves, None elsewhere
    count: jax.Array  # updates applied so far (int32); update n is step n = count + 1
    key: jax.Array  # PRNG key of the next drop/grow


def dynamic_sparse(
    inner: optax.GradientTransformation,
    masks: PyTree,
    *,
    key: jax.Array,
    update_every: int,
    drop_fraction: optax.ScalarOrSchedule = 0.3,
    end_step: int | None = None,
    grow: str = "rigl",
    scope: str = "global",
    reset_moments_on_grow: bool = False,
) -> optax.GradientTransformationExtraArgs:
    """Dynamic sparse training (RigL, SET) as one optax transform with the masks in its state.

    Every update lands inactive weights on exactly 0, as :func:`keep_sparse` does. At step
    ``n`` (the n-th update, counted from 1) with ``n % update_every == 0`` and ``n < end_step``,
    it also runs :func:`drop_grow` on the weights as they are after this step, ranking growth
    by this step's gradients (the pre-update ones, as RigL does), and its updates then land the
    dropped weights on 0 too. The total active count never changes.

    Wrap the whole optimizer (``dynamic_sparse(optax.chain(...), ...)``) so that the gradients
    it ranks are the raw ones. Start from masked params (``apply_masks(params, masks)``): the
    first update zeroes inactive weights anyway, but the first gradients are taken before it.

    Args:
        inner: the optimizer (any optax transform; extra ``update`` arguments are passed on).
        masks: the initial masks, e.g. from :func:`init_masks`.
        key: PRNG key of the drop/grow updates.
        update_every: steps between mask updates (RigL's delta T).
        drop_fraction: a float or an ``optax.Schedule`` of the step, e.g.
            ``optax.cosine_decay_schedule(0.3, end_step)``.
        end_step: no mask update at this step or later (RigL's T_end); ``None``: never stop.
        grow: ``'rigl'`` (largest ``|grad|``) or ``'set'`` (uniformly at random).
        scope: ``'global'`` ranks all maskable leaves together; ``'layer'`` keeps each leaf's
            count.
        reset_moments_on_grow: zero ``inner``'s params-shaped state at grown entries.

    Returns:
        A transform whose state is a :class:`DynamicSparseState`; ``update`` needs ``params``.

    Raises:
        ValueError: for an unknown ``grow``/``scope`` or a non-positive ``update_every``.

    Example:
        >>> import jax, jax.numpy as jnp, optax
        >>> from adapt_jax import sparse
        >>> params = {"Dense_0": {"kernel": jnp.ones((4, 5))}}
        >>> masks = sparse.init_masks(jax.random.key(0), params, density=0.5)
        >>> tx = sparse.dynamic_sparse(optax.sgd(0.1), masks, key=jax.random.key(1),
        ...                            update_every=2)
        >>> params, state = sparse.apply_masks(params, masks), tx.init(params)
        >>> grads = {"Dense_0": {"kernel": jnp.arange(20.0).reshape(4, 5)}}
        >>> @jax.jit
        ... def step(params, state):
        ...     updates, state = tx.update(grads, state, params)
        ...     return optax.apply_updates(params, updates), state
        >>> for _ in range(2):
        ...     params, state = step(params, state)
        >>> int(state.count), int(sparse.count_active(state.masks))
        (2, 10)
        >>> bool(jnp.all(jnp.where(state.masks["Dense_0"]["kernel"], True,
        ...                        params["Dense_0"]["kernel"] == 0)))
        True
    """
    check_choice("grow", grow, GROW_MODES)
    check_choice("scope", scope, SCOPES)
    if update_every <= 0:
        raise ValueError(f"update_every must be positive, got {update_every!r}")
    fraction = as_schedule(drop_fraction)
    inner = optax.with_extra_args_support(inner)

    def init_fn(params: PyTree) -> DynamicSparseState:
        flatten_like(masks, params)  # fails early if the masks do not fit the params
        return DynamicSparseState(inner.init(params), masks, jnp.zeros([], jnp.int32), key)

    def update_fn(grads: PyTree, state: DynamicSparseState, params: PyTree | None = None,
                  **extra: Any) -> tuple[PyTree, DynamicSparseState]:
        if params is None:
            raise ValueError("dynamic_sparse needs params to zero inactive entries")
        step = state.count + 1
        updates, inner_state = inner.update(grads, state.inner_state, params, **extra)
        updates = zeroing_updates(updates, params, state.masks)
        due = step % update_every == 0
        if end_step is not None:
            due &= step < end_step

        def rewire(carry: tuple) -> tuple:
            updates, old_masks, inner_state, key = carry
            key, sub = jax.random.split(key)
            stepped = optax.apply_updates(params, updates)
            _, new_masks = drop_grow(sub, stepped, old_masks, grads, fraction(step), grow=grow,
                                     scope=scope)
            survived = tree_map(lambda old, new: None if old is None else old & new,
                                old_masks, new_masks)
            if reset_moments_on_grow:
                grown = grown_entries(old_masks, new_masks)
                inner_state = reset_moments(inner_state, grown, inner)
            return zeroing_updates(updates, params, survived), new_masks, inner_state, key

        carry = (updates, state.masks, inner_state, state.key)
        updates, masks, inner_state, key = jax.lax.cond(due, rewire, lambda c: c, carry)
        return updates, DynamicSparseState(inner_state, masks, step, key)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)
