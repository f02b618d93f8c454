"""Train-state pytrees: everything that changes during training and is checkpointed on device."""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp

from adapt_jax import sparse


@flax.struct.dataclass
class NetState:
    """One network: params (stored already masked), masks beside them, optimizer, other state.

    `stats` holds the non-trainable collections (BatchNorm running stats, spectral-norm u/sigma)
    as a dict `{collection_name: tree}` so apply() can receive `{'params': ..., **stats}`.
    """

    params: Any
    masks: Any
    opt_state: Any
    stats: dict

    def variables(self, params: Any | None = None) -> dict:
        return {"params": self.params if params is None else params, **self.stats}


@flax.struct.dataclass
class TrainState:
    g: NetState
    d: NetState
    ema_params: Any  # EMA of G's params, exactly as sparse as G's masks
    step: jax.Array  # completed iterations (int32)
    rng: jax.Array  # base key; per-iteration keys are fold_in(rng, step, sub) so resume is exact
    # First iteration whose loss or gradients were non-finite (0 = none). Recorded on device so
    # the host can name the iteration without a sync per step; ReLUs can hide NaN weights from
    # the loss, so gradients are checked too.
    nonfinite_at: jax.Array = dataclasses.field(default_factory=lambda: jnp.zeros((), jnp.int32))


def split_variables(variables: dict) -> tuple[Any, dict]:
    """Flax variables → (params, {other collections})."""
    stats = {k: v for k, v in variables.items() if k != "params"}
    return variables["params"], stats


def init_net(key: jax.Array, variables: dict, density: float, distribution: str,
             is_maskable, tx) -> NetState:
    """Masks at `density` (exact per-layer counts), params masked, optimizer initialised."""
    params, stats = split_variables(variables)
    masks = sparse.init_masks(key, params, density, distribution, is_maskable=is_maskable)
    params = sparse.apply_masks(params, masks)
    return NetState(params=params, masks=masks, opt_state=tx.init(params), stats=stats)


def iteration_key(state: TrainState, sub: jax.Array | int) -> jax.Array:
    """The key of sub-step `sub` of the current iteration: a pure function of (seed, step, sub)."""
    return jax.random.fold_in(jax.random.fold_in(state.rng, state.step), jnp.asarray(sub))
