"""Drop-fraction schedules: the config's names as optax schedules, and floats as schedules."""

from __future__ import annotations

import optax

SCHEDULES = ("cosine", "linear", "constant")


def drop_fraction_schedule(name: str, initial: float, total_steps: int,
                           final: float = 0.005) -> optax.Schedule:
    """The optax schedule a config's schedule name stands for.

    ``'cosine'`` decays from ``initial`` to ``final`` (RigL's schedule, and the one ADAPT's
    reference code uses), ``'linear'`` from ``initial`` to 0, ``'constant'`` stays at
    ``initial``; steps past ``total_steps`` keep the end value. The cosine is
    ``final + optax.cosine_decay_schedule(initial - final, total_steps)``, which is defined for
    any ``initial`` (``alpha = final / initial`` is not for ``initial == 0``).

    Args:
        name: ``'cosine'``, ``'linear'`` or ``'constant'``.
        initial: the drop fraction at step 0.
        total_steps: steps over which the fraction decays (positive).
        final: the cosine's end value.

    Returns:
        An ``optax.Schedule``: step (a Python int or a traced array) -> fraction.

    Raises:
        ValueError: for an unknown name or a non-positive ``total_steps``.

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
    if name == "cosine":
        decay = optax.cosine_decay_schedule(initial - final, total_steps)
        return lambda step: decay(step) + final
    if name == "linear":
        return optax.linear_schedule(initial, 0.0, total_steps)
    return optax.constant_schedule(initial)


def as_schedule(value: optax.ScalarOrSchedule) -> optax.Schedule:
    """A schedule as is, a number as a constant schedule (optax's convention for rates)."""
    return value if callable(value) else optax.constant_schedule(value)
