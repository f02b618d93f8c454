"""Host-side float64 metrics: feature statistics, Fréchet distance, Inception Score.

The Fréchet distance follows the TTUR/pytorch-fid numerics (scipy `sqrtm` of Σ1Σ2, retry with
eps on the diagonal when the product is singular, drop a negligible imaginary part), because FID
values are only comparable across papers when computed the same way.
"""

from __future__ import annotations

import logging
import os
import warnings

import numpy as np
import scipy.linalg
import scipy.special

from adapt_jax.evaluation import storage

logger = logging.getLogger(__name__)


class StatsAccumulator:
    """Streaming mean and covariance (Chan et al. pairwise update) in float64.

    Evaluation never holds all features at once (50k x 2048 floats), and the pairwise update on
    centred batches keeps the precision of a two-pass `np.cov`.
    """

    def __init__(self) -> None:
        self.count = 0
        self._mean: np.ndarray | None = None
        self._m2: np.ndarray | None = None

    def update(self, features: np.ndarray) -> None:
        x = np.asarray(features, np.float64)
        if x.ndim != 2:
            raise ValueError(f"features must be (n, d), got {x.shape}")
        n_b = x.shape[0]
        if n_b == 0:
            return
        mean_b = x.mean(axis=0)
        centred = x - mean_b
        m2_b = centred.T @ centred
        if self._mean is None:
            self.count, self._mean, self._m2 = n_b, mean_b, m2_b
            return
        n_a, total = self.count, self.count + n_b
        delta = mean_b - self._mean
        self._mean = self._mean + delta * (n_b / total)
        self._m2 = self._m2 + m2_b + np.outer(delta, delta) * (n_a * n_b / total)
        self.count = total

    def finalize(self) -> tuple[np.ndarray, np.ndarray]:
        """(mu, sigma) with the unbiased covariance, as `np.cov(rowvar=False)`."""
        if self.count < 2:
            raise ValueError(f"need at least 2 feature vectors, got {self.count}")
        return self._mean.copy(), self._m2 / (self.count - 1)


def feature_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """mu (d,) and sigma (d, d) of an (n, d) feature matrix."""
    acc = StatsAccumulator()
    acc.update(features)
    return acc.finalize()


def _sqrtm(a: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():
        # Singular products are handled below by the eps retry; scipy's warning is just noise.
        warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
        return scipy.linalg.sqrtm(a)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray,
                     eps: float = 1e-6) -> float:
    """||mu1 - mu2||^2 + Tr(Σ1 + Σ2 - 2 (Σ1 Σ2)^½) of two Gaussians, in float64."""
    mu1 = np.atleast_1d(np.asarray(mu1, np.float64))
    mu2 = np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1 = np.atleast_2d(np.asarray(sigma1, np.float64))
    sigma2 = np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != mu1.shape * 2:
        raise ValueError(f"mismatched statistics: mu {mu1.shape} vs {mu2.shape}, "
                         f"sigma {sigma1.shape} vs {sigma2.shape}")
    diff = mu1 - mu2
    covmean = _sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        logger.warning("Fréchet distance: singular product; adding %g to the diagonals", eps)
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = _sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        max_imag = np.max(np.abs(np.diagonal(covmean).imag))
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"Fréchet distance: imaginary component {max_imag:.3g} in sqrtm")
        covmean = covmean.real
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean))


def inception_score(probs: np.ndarray, splits: int = 10) -> tuple[float, float]:
    """exp(E_x KL(p(y|x) || p(y))) over `splits` contiguous chunks -> (mean, std).

    Chunking follows the reference TF code (`part = preds[i*n//splits:(i+1)*n//splits]`).
    """
    p = np.asarray(probs, np.float64)
    n = p.shape[0]
    if p.ndim != 2 or n < splits:
        raise ValueError(f"need (n >= {splits}, classes) probabilities, got {p.shape}")
    scores = []
    for i in range(splits):
        part = p[i * n // splits:(i + 1) * n // splits]
        marginal = part.mean(axis=0, keepdims=True)
        kl = scipy.special.rel_entr(part, marginal).sum(axis=1).mean()
        scores.append(np.exp(kl))
    return float(np.mean(scores)), float(np.std(scores))


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row softmax in float64 (IS is sensitive to probabilities of rare classes)."""
    return scipy.special.softmax(np.asarray(logits, np.float64), axis=1)


def save_stats(path: str, mu: np.ndarray, sigma: np.ndarray, kind: str) -> None:
    """The common `.npz` stats format (`mu`, `sigma`) plus `kind` naming the feature extractor."""
    storage.save_npz(path, {"mu": np.asarray(mu, np.float64),
                            "sigma": np.asarray(sigma, np.float64), "kind": np.asarray(kind)})


def load_stats(path: str, expected_kind: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Reads `mu`/`sigma` from a stats file (ours, TTUR's or pytorch-fid's)."""
    if not os.path.exists(path):
        raise FileNotFoundError(path)
    arrays = storage.load_npz(path)
    if "mu" not in arrays or "sigma" not in arrays:
        raise ValueError(f"{path}: a statistics file needs 'mu' and 'sigma', has {sorted(arrays)}")
    kind = str(arrays["kind"]) if "kind" in arrays else None
    if expected_kind and kind is not None and kind != expected_kind:
        raise ValueError(f"{path} holds {kind!r} statistics, expected {expected_kind!r}")
    return np.asarray(arrays["mu"], np.float64), np.asarray(arrays["sigma"], np.float64)
