"""Sparse training for any JAX model: masks as a pytree beside the params.

Depends on jax, numpy and optax only. Typical loop::

    masks = sparse.init_masks(key, params, density=0.1)          # ERK, exact counts
    params = sparse.apply_masks(params, masks)                   # stored params are masked
    opt = sparse.keep_sparse(optax.adam(1e-3))
    updates, state = opt.update(grads, state, params, masks=masks)
    params = optax.apply_updates(params, updates)                # inactive entries stay 0
    params, masks = sparse.drop_grow(key, params, masks, grads, fraction)   # every dT steps

See docs/sparse.md.
"""

from adapt_jax.sparse.diagnostics import flip_rate, itop_rate, update_ever_active
from adapt_jax.sparse.distributions import (
    er_densities,
    erk_densities,
    layer_counts,
    layer_densities,
    uniform_densities,
)
from adapt_jax.sparse.drop_grow import drop_grow, resize
from adapt_jax.sparse.masks import (
    apply_masks,
    count_active,
    count_maskable,
    default_is_maskable,
    density_stats,
    grown_entries,
    init_masks,
    maskable_shapes,
    path_str,
)
from adapt_jax.sparse.schedules import drop_fraction_schedule
from adapt_jax.sparse.transform import keep_sparse, reset_moments

__all__ = [
    "apply_masks",
    "count_active",
    "count_maskable",
    "default_is_maskable",
    "density_stats",
    "drop_fraction_schedule",
    "drop_grow",
    "er_densities",
    "erk_densities",
    "flip_rate",
    "grown_entries",
    "init_masks",
    "itop_rate",
    "keep_sparse",
    "layer_counts",
    "layer_densities",
    "maskable_shapes",
    "path_str",
    "reset_moments",
    "resize",
    "uniform_densities",
    "update_ever_active",
]
