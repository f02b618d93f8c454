"""Improved precision and recall (Kynkäänniemi et al., NeurIPS 2019) on feature vectors.

Each set's manifold is the union of balls around its points, each ball reaching the point's k-th
nearest neighbour in the same set. Precision is the fraction of generated points inside the real
manifold (are samples realistic?); recall is the fraction of real points inside the generated
manifold (does the generator cover the data?). A generator that draws every class well but
nearly the same image per class scores high precision and low recall, which a Fréchet distance
on its own hides.

Distances are computed in float64, a block of rows at a time, so memory stays bounded at tens of
thousands of samples. Conventions follow the authors' code: the k-th neighbour excludes the point
itself, and a point on a ball's boundary is inside.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

DEFAULT_K = 3
# Distance entries held at once (float64): 2^23 x 8 bytes = 64 MiB.
BLOCK_ELEMENTS = 1 << 23


def _blocks(rows: np.ndarray, others: np.ndarray) -> Iterator[tuple[slice, np.ndarray]]:
    """(row slice, squared distances of those rows to every row of `others`), block by block."""
    others_sq = np.einsum("ij,ij->i", others, others)
    step = max(1, BLOCK_ELEMENTS // max(1, len(others)))
    for start in range(0, len(rows), step):
        x = rows[start:start + step]
        d2 = np.einsum("ij,ij->i", x, x)[:, None] + others_sq[None, :] - 2.0 * (x @ others.T)
        yield slice(start, start + len(x)), np.maximum(d2, 0.0)


def _as_features(x: np.ndarray, name: str) -> np.ndarray:
    x = np.asarray(x, np.float64)
    if x.ndim != 2 or len(x) == 0:
        raise ValueError(f"{name} features must be a non-empty (n, d) array, got {x.shape}")
    return x


def knn_radii(features: np.ndarray, k: int = DEFAULT_K) -> np.ndarray:
    """Squared distance of every point to its k-th nearest other point of the same set."""
    x = _as_features(features, "manifold")
    if not 1 <= k < len(x):
        raise ValueError(f"k={k} needs at least {k + 1} points, got {len(x)}")
    radii = np.empty(len(x))
    for rows, d2 in _blocks(x, x):
        # Index k of the sorted row: index 0 is the point itself (distance 0).
        radii[rows] = np.partition(d2, k, axis=1)[:, k]
    return radii


def coverage(points: np.ndarray, manifold: np.ndarray, radii: np.ndarray) -> float:
    """Fraction of `points` inside some ball (centre `manifold[j]`, squared radius `radii[j]`)."""
    p, m = _as_features(points, "query"), _as_features(manifold, "manifold")
    if p.shape[1] != m.shape[1] or len(radii) != len(m):
        raise ValueError(f"mismatched shapes: points {p.shape}, manifold {m.shape}, "
                         f"radii {np.shape(radii)}")
    inside = np.zeros(len(p), bool)
    for rows, d2 in _blocks(p, m):
        inside[rows] = (d2 <= radii[None, :]).any(axis=1)
    return float(inside.mean())


def precision_recall(real: np.ndarray, fake: np.ndarray, k: int = DEFAULT_K,
                     real_radii: np.ndarray | None = None) -> dict[str, float]:
    """{'precision', 'recall'} of generated features `fake` against `real` features.

    `real_radii` (`knn_radii(real, k)`) may be passed in: the evaluator computes them once per
    run, as the real features never change.
    """
    real, fake = _as_features(real, "real"), _as_features(fake, "generated")
    if real_radii is None:
        real_radii = knn_radii(real, k)
    return {"precision": coverage(fake, real, real_radii),
            "recall": coverage(real, fake, knn_radii(fake, k))}
