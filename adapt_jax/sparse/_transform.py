"""Functional optax glue: keep inactive weights at exactly zero, reset moments at grown entries."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax

from adapt_jax.sparse._tree import PyTree, is_leaf, tree_map


def zeroing_updates(updates: PyTree, params: PyTree, masks: PyTree) -> PyTree:
    """Updates that land every inactive param on 0 (``p + (-p) == 0`` exactly in IEEE)."""
    return tree_map(lambda m, u, p: u if m is None else jnp.where(m, u, -p.astype(u.dtype)),
                    masks, updates, params)


def keep_sparse(inner: optax.GradientTransformation) -> optax.GradientTransformationExtraArgs:
    """Wrap any optax transform so ``apply_updates`` leaves inactive entries at exactly 0.

    The functional form: masks are an argument of ``update(updates, state, params, *, masks)``
    rather than state, so a mask update needs no optimizer bookkeeping (the ADAPT trainer's
    way); :func:`dynamic_sparse` is the stateful form. Gradients reach ``inner`` unmasked and its
    moments stay dense (the reference's behaviour); only the returned updates are masked, which
    also stops weight decay or momentum from reviving inactive weights.

    Args:
        inner: any optax transform (extra ``update`` keyword arguments are passed on).

    Returns:
        A transform whose ``update`` needs ``params`` and ``masks=``.

    Example:
        >>> import jax.numpy as jnp, optax
        >>> from adapt_jax import sparse
        >>> params, masks = {"kernel": jnp.array([1.0, 0.0])}, {"kernel": jnp.array([True, False])}
        >>> opt = sparse.keep_sparse(optax.sgd(0.1))
        >>> grads = {"kernel": jnp.array([1.0, 1.0])}
        >>> updates, _ = opt.update(grads, opt.init(params), params, masks=masks)
        >>> optax.apply_updates(params, updates)["kernel"]
        Array([0.9, 0. ], dtype=float32)
    """
    inner = optax.with_extra_args_support(inner)

    def update_fn(
        updates: PyTree, state: Any, params: PyTree | None = None, *, masks: PyTree, **extra: Any
    ) -> tuple[PyTree, Any]:
        if params is None:
            raise ValueError("keep_sparse needs params to zero inactive entries")
        updates, state = inner.update(updates, state, params, **extra)
        return zeroing_updates(updates, params, masks), state

    return optax.GradientTransformationExtraArgs(inner.init, update_fn)


class _Marker:
    """Builds an optimizer-state skeleton that tree_map_params can read, from the state alone."""

    def __init__(self, opt_state: Any, grown: PyTree):
        self.opt_state = opt_state
        self.treedef = jax.tree.structure(grown, is_leaf=is_leaf)
        leaves = jax.tree.leaves(grown, is_leaf=is_leaf)
        self.shapes = [None if g is None else g.shape for g in leaves]

    def is_params_like(self, node: Any) -> bool:
        """Same structure as params and the mask shapes at maskable leaves (counts never match)."""
        leaves, treedef = jax.tree.flatten(node)
        return treedef == self.treedef and all(
            s is None or getattr(leaf, "shape", None) == s
            for leaf, s in zip(leaves, self.shapes, strict=True)
        )

    def __call__(self, placeholder: Any) -> Any:
        return jax.tree.map(
            lambda node: placeholder if self.is_params_like(node) else node,
            self.opt_state,
            is_leaf=self.is_params_like,
        )


def reset_moments(
    opt_state: Any, grown: PyTree, optimizer: optax.GradientTransformation | None = None
) -> Any:
    """Zero every params-shaped leaf of ``opt_state`` at the ``grown`` entries.

    Works for any optax state (Adam mu/nu, momentum traces, chains) via
    ``optax.tree_utils.tree_map_params``; counts and other leaves are untouched.

    Args:
        opt_state: the optimizer state.
        grown: a masks tree of the entries to reset, e.g. :func:`grown_entries`.
        optimizer: the transform that made ``opt_state`` (optax's placeholder mechanism);
            without it the params-shaped subtrees are found by structure and shape.

    Returns:
        ``opt_state`` with those entries zeroed.

    Example:
        >>> import jax.numpy as jnp, optax
        >>> from adapt_jax import sparse
        >>> opt = optax.adam(1e-3)
        >>> state = opt.init({"kernel": jnp.ones(2)})
        >>> state = optax.tree_utils.tree_map_params(opt, lambda x: x + 1.0, state)
        >>> state = sparse.reset_moments(state, {"kernel": jnp.array([False, True])}, opt)
        >>> state[0].mu["kernel"]
        Array([1., 0.], dtype=float32)
    """
    initable = optimizer if optimizer is not None else _Marker(opt_state, grown)
    return optax.tree_utils.tree_map_params(
        initable,
        lambda leaf, g: leaf if g is None else jnp.where(g, jnp.zeros_like(leaf), leaf),
        opt_state,
        grown,
    )
