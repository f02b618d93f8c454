"""Optax glue: keep inactive weights at exactly zero, and reset moments at grown entries."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax

from adapt_jax.sparse.masks import PyTree, is_none


def _zeroing_updates(updates: PyTree, params: PyTree, masks: PyTree) -> PyTree:
    """Updates that land every inactive param on 0 (``p + (-p) == 0`` exactly in IEEE)."""
    return jax.tree.map(
        lambda m, u, p: u if m is None else jnp.where(m, u, -p.astype(u.dtype)),
        masks,
        updates,
        params,
        is_leaf=is_none,
    )


def keep_sparse(inner: optax.GradientTransformation) -> optax.GradientTransformationExtraArgs:
    """Wrap any optax transform so ``apply_updates`` leaves inactive entries at 0.

    ``update(updates, state, params, *, masks, **extra)``. Gradients reach ``inner`` unmasked and
    its moments stay dense (reference behaviour); only the returned updates are masked, which
    also stops weight decay or momentum from reviving inactive weights. Because the masks are an
    argument rather than state, a mask update needs no optimizer bookkeeping.
    """
    inner = optax.with_extra_args_support(inner)

    def update_fn(
        updates: PyTree, state: Any, params: PyTree | None = None, *, masks: PyTree, **extra: Any
    ) -> tuple[PyTree, Any]:
        if params is None:
            raise ValueError("keep_sparse needs params to zero inactive entries")
        updates, state = inner.update(updates, state, params, **extra)
        return _zeroing_updates(updates, params, masks), state

    return optax.GradientTransformationExtraArgs(inner.init, update_fn)


class _Marker:
    """Builds an optimizer-state skeleton that tree_map_params can read, from the state alone."""

    def __init__(self, opt_state: Any, grown: PyTree):
        self.opt_state = opt_state
        self.treedef = jax.tree.structure(grown, is_leaf=is_none)
        leaves = jax.tree.leaves(grown, is_leaf=is_none)
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
    ``optax.tree_utils.tree_map_params``; counts and other leaves are untouched. Without
    ``optimizer`` the params-shaped subtrees are found by structure and shape.
    """
    initable = optimizer if optimizer is not None else _Marker(opt_state, grown)
    return optax.tree_utils.tree_map_params(
        initable,
        lambda leaf, g: leaf if g is None else jnp.where(g, jnp.zeros_like(leaf), leaf),
        opt_state,
        grown,
    )
