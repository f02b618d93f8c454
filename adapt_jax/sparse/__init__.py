"""Dynamic sparse training for any JAX model: masks as a pytree beside the params.

Depends on jax, numpy and optax only. The stateful form drops into flax's
``TrainState.apply_gradients``::

    masks = sparse.init_masks(key, params, density=0.1)           # ERK, exact counts
    tx = sparse.dynamic_sparse(optax.adam(1e-3), masks, key=k, update_every=100,
                               drop_fraction=optax.cosine_decay_schedule(0.3, 7500))
    state = TrainState.create(apply_fn=model.apply, params=sparse.apply_masks(params, masks),
                              tx=tx)                               # masks: state.opt_state.masks

The functional core, for trainers that change masks themselves::

    opt = sparse.keep_sparse(optax.adam(1e-3))
    updates, opt_state = opt.update(grads, opt_state, params, masks=masks)
    params, masks = sparse.drop_grow(key, params, masks, grads, drop_fraction)

See docs/sparse.md.
"""

from adapt_jax.sparse._diagnostics import (
    DensityStats,
    density_stats,
    flip_rate,
    itop_rate,
    update_ever_active,
)
from adapt_jax.sparse._distributions import (
    DISTRIBUTIONS,
    er_densities,
    erk_densities,
    layer_counts,
    layer_densities,
    uniform_densities,
)
from adapt_jax.sparse._drop_grow import GROW_MODES, SCOPES, drop_grow, num_to_drop, resize
from adapt_jax.sparse._dynamic import DynamicSparseState, dynamic_sparse
from adapt_jax.sparse._masks import (
    apply_masks,
    count_active,
    count_maskable,
    default_is_maskable,
    grown_entries,
    init_masks,
    maskable_shapes,
)
from adapt_jax.sparse._schedules import SCHEDULES, drop_fraction_schedule
from adapt_jax.sparse._transform import keep_sparse, reset_moments
from adapt_jax.sparse._tree import is_leaf, named_masks, path_str, tree_map

__all__ = [
    "DISTRIBUTIONS",
    "GROW_MODES",
    "SCHEDULES",
    "SCOPES",
    "DensityStats",
    "DynamicSparseState",
    "apply_masks",
    "count_active",
    "count_maskable",
    "default_is_maskable",
    "density_stats",
    "drop_fraction_schedule",
    "drop_grow",
    "dynamic_sparse",
    "er_densities",
    "erk_densities",
    "flip_rate",
    "grown_entries",
    "init_masks",
    "is_leaf",
    "itop_rate",
    "keep_sparse",
    "layer_counts",
    "layer_densities",
    "maskable_shapes",
    "named_masks",
    "num_to_drop",
    "path_str",
    "reset_moments",
    "resize",
    "tree_map",
    "uniform_densities",
    "update_ever_active",
]
