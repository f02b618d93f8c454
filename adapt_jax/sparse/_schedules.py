"""Drop-fraction schedules ``t -> f(t)`` for periodic drop/grow."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax.numpy as jnp
import numpy as np

SCHEDULES = ("cosine", "linear", "constant")


def drop_fraction_schedule(
    name: str, initial: float, total_steps: int, final: float = 0.005
) -> Callable[[Any], Any]:
    """``'cosine'``: ``final + (initial - final) * (1 + cos(pi t / T)) / 2`` (reference, RigL);
    ``'linear'``: ``(1 - t / T) * initial``; ``'constant'``: ``initial``.

    ``t`` is clipped to ``[0, T]``. A Python/numpy number gives a Python float (host-side
    logging); a jax value gives a jax scalar (inside ``jit``), so one function serves both.

    Example:
        >>> from adapt_jax import sparse
        >>> schedule = sparse.drop_fraction_schedule("linear", 0.5, total_steps=100)
        >>> float(schedule(0)), float(schedule(50)), float(schedule(200))
        (0.5, 0.25, 0.0)
    """
    if name not in SCHEDULES:
        raise ValueError(f"unknown schedule {name!r}; valid choices: {', '.join(SCHEDULES)}")
    if total_steps <= 0:
        raise ValueError(f"total_steps must be positive, got {total_steps!r}")

    def schedule(t: Any) -> Any:
        host = isinstance(t, (int, float, np.number))
        xp, dtype = (np, np.float64) if host else (jnp, jnp.float32)
        progress = xp.clip(xp.asarray(t, dtype=dtype) / total_steps, 0.0, 1.0)
        if name == "cosine":
            value = final + (initial - final) * (1.0 + xp.cos(math.pi * progress)) / 2.0
        elif name == "linear":
            value = (1.0 - progress) * initial
        else:
            value = initial + 0.0 * progress
        return float(value) if host else value

    return schedule
