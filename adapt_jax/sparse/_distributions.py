"""Per-layer density distributions (uniform, ER, ERK) and exact integer counts.

Pure numpy over ``{name: shape}`` dicts, so the numbers can be computed, logged and tested on the
host before any array exists. Every function keeps the dict's order.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import numpy as np

Shapes = Mapping[str, tuple[int, ...]]


def check_density(density: float) -> None:
    """Reject densities outside (0, 1] with one message used across the library."""
    if not 0.0 < float(density) <= 1.0:
        raise ValueError(f"density must be in (0, 1], got {density!r}")


def _scaled_densities(shapes: Shapes, density: float, raw: Mapping[str, float]) -> dict[str, float]:
    """Densities ``eps * raw[l]`` with ``sum(p_l * N_l) == density * N``, capped at 1.

    The cap is the reference's iterative fix-up: while the largest ``eps * raw`` exceeds 1, every
    layer with that raw score becomes dense and ``eps`` is re-solved over the remaining layers.
    """
    check_density(density)
    sizes = {name: math.prod(shape) for name, shape in shapes.items()}
    total = sum(sizes.values())
    dense: set[str] = set()
    eps = 0.0
    while len(dense) < len(sizes):
        free = [name for name in sizes if name not in dense]
        budget = density * total - sum(sizes[name] for name in dense)
        eps = budget / sum(raw[name] * sizes[name] for name in free)
        top = max(raw[name] for name in free)
        if eps * top <= 1.0:
            break
        dense.update(name for name in free if raw[name] == top)
    return {name: 1.0 if name in dense else min(1.0, eps * raw[name]) for name in sizes}


def erk_densities(shapes: Shapes, density: float, power_scale: float = 1.0) -> dict[str, float]:
    """Erdos-Renyi-Kernel densities: raw score ``(sum(shape) / prod(shape)) ** power_scale``.

    Small layers (first/last, 1x1 shortcuts) get higher density, which is what keeps very sparse
    networks trainable; ``power_scale=0`` degenerates to uniform.

    Args:
        shapes: ``{name: shape}`` of the maskable leaves (see :func:`maskable_shapes`).
        density: overall density in (0, 1]: ``sum(p_l * N_l) == density * N``.
        power_scale: exponent of the raw score.

    Returns:
        ``{name: density}`` in the order of ``shapes``, each capped at 1.

    Example:
        >>> from adapt_jax import sparse
        >>> d = sparse.erk_densities({"small": (4, 4), "big": (64, 64)}, 0.1)
        >>> d["small"] > d["big"]
        True
    """
    raw = {name: (sum(shape) / math.prod(shape)) ** power_scale for name, shape in shapes.items()}
    return _scaled_densities(shapes, density, raw)


def er_densities(shapes: Shapes, density: float) -> dict[str, float]:
    """Erdos-Renyi densities: raw score ``(n_in + n_out) / (n_in * n_out)`` of the last two dims.

    For a conv kernel ``(kh, kw, in, out)`` the spatial dims are ignored (as in
    google-research/rigl's non-kernel-aware ER); for dense kernels ER and ERK agree.

    Example:
        >>> from adapt_jax import sparse
        >>> shapes = {"a": (8, 16), "b": (16, 4)}
        >>> sparse.er_densities(shapes, 0.5) == sparse.erk_densities(shapes, 0.5)
        True
    """
    raw = {name: (s[-2] + s[-1]) / (s[-2] * s[-1]) for name, s in shapes.items()}
    return _scaled_densities(shapes, density, raw)


def uniform_densities(shapes: Shapes, density: float) -> dict[str, float]:
    """The same density everywhere (the simplest baseline).

    Example:
        >>> from adapt_jax import sparse
        >>> sparse.uniform_densities({"a": (8, 16), "b": (16, 4)}, 0.25)
        {'a': 0.25, 'b': 0.25}
    """
    check_density(density)
    return {name: float(density) for name in shapes}


DISTRIBUTIONS: dict[str, Callable[[Shapes, float], dict[str, float]]] = {
    "erk": erk_densities,
    "er": er_densities,
    "uniform": uniform_densities,
}


def layer_densities(shapes: Shapes, density: float, distribution: str = "erk") -> dict[str, float]:
    """Per-layer densities of the distribution named ``'erk'``, ``'er'`` or ``'uniform'``.

    Raises:
        ValueError: for an unknown name (the message lists the valid ones).

    Example:
        >>> from adapt_jax import sparse
        >>> sparse.layer_densities({"a": (8, 16)}, 0.25, "uniform")
        {'a': 0.25}
    """
    if distribution not in DISTRIBUTIONS:
        valid = ", ".join(sorted(DISTRIBUTIONS))
        raise ValueError(f"unknown distribution {distribution!r}; valid choices: {valid}")
    return DISTRIBUTIONS[distribution](shapes, density)


def layer_counts(shapes: Shapes, density: float, distribution: str = "erk") -> dict[str, int]:
    """Exact active counts per layer, summing to ``round(density * N)`` (Python round).

    Floors of ``p_l * N_l`` plus a largest-remainder pass (ties by dict order), so the total is
    exact, deterministic and no layer exceeds its size: the reference's Bernoulli masks are not.

    Example:
        >>> from adapt_jax import sparse
        >>> sparse.layer_counts({"a": (8, 16), "b": (16, 4)}, 0.25, "uniform")
        {'a': 32, 'b': 16}
    """
    densities = layer_densities(shapes, density, distribution)
    names = list(shapes)
    sizes = np.array([math.prod(shapes[name]) for name in names], dtype=np.int64)
    exact = np.array([densities[name] for name in names], dtype=np.float64) * sizes
    counts = np.clip(np.floor(exact).astype(np.int64), 0, sizes)
    remainder = round(density * int(sizes.sum())) - int(counts.sum())
    frac = exact - counts
    up, down = np.argsort(-frac, kind="stable"), np.argsort(frac, kind="stable")
    while remainder > 0:
        for i in (i for i in up if counts[i] < sizes[i]):
            counts[i] += 1
            remainder -= 1
            if remainder == 0:
                break
    while remainder < 0:
        for i in (i for i in down if counts[i] > 0):
            counts[i] -= 1
            remainder += 1
            if remainder == 0:
                break
    return {name: int(c) for name, c in zip(names, counts, strict=True)}
