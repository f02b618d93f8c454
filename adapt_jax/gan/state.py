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


@dataclasses.dataclass(frozen=True)
class SubKeys:
    """Which `sub` of `iteration_key` each random consumer of one iteration uses.

    All are distinct, so no two consumers share randomness: D step i uses i, the G step
    n_critic, the D mask update n_critic + 1 (and + 2 inside), the post-hoc prune n_critic + 3.
    """

    n_critic: int

    def d_step(self, i: int) -> int:
        return i

    @property
    def g_step(self) -> int:
        return self.n_critic

    @property
    def d_mask_update(self) -> int:
        return self.n_critic + 1

    @property
    def g_prune(self) -> int:
        return self.n_critic + 3


# Host-side key streams (sampling outside the training steps), folded into PRNGKey(seed).
SAMPLE_GRID_STREAM = 1
EVAL_STREAM = 2


def stream_key(seed: int, stream: int, *counters: int) -> jax.Array:
    """A key for host-side sampling, independent of the training keys for any counters."""
    key = jax.random.fold_in(jax.random.PRNGKey(seed), stream)
    for c in counters:
        key = jax.random.fold_in(key, c)
    return key
