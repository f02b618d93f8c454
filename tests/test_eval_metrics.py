"""Fréchet distance, Inception Score and feature statistics against closed forms (host only)."""

import logging
import warnings

import numpy as np
import pytest
import scipy.linalg

from adapt_jax.evaluation import metrics


def random_spd(rng: np.random.Generator, d: int) -> np.ndarray:
    a = rng.normal(size=(d, d))
    return a @ a.T / d + 0.1 * np.eye(d)


def fd_eigh(mu1, s1, mu2, s2) -> float:
    """Independent form: Tr sqrt(Σ1^½ Σ2 Σ1^½) from symmetric eigendecompositions."""
    w, v = scipy.linalg.eigh(s1)
    root1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    inner = scipy.linalg.eigvalsh(root1 @ s2 @ root1)
    diff = mu1 - mu2
    tr_covmean = np.sqrt(np.clip(inner, 0, None)).sum()
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * tr_covmean)


def test_identical_gaussians_have_zero_distance():
    rng = np.random.default_rng(0)
    mu, sigma = rng.normal(size=16), random_spd(rng, 16)
    assert metrics.frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0.0, abs=1e-8)


def test_diagonal_covariances_match_closed_form():
    rng = np.random.default_rng(1)
    mu1, mu2 = rng.normal(size=8), rng.normal(size=8)
    v1, v2 = rng.uniform(0.1, 3.0, 8), rng.uniform(0.1, 3.0, 8)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum(v1 + v2 - 2 * np.sqrt(v1 * v2))
    got = metrics.frechet_distance(mu1, np.diag(v1), mu2, np.diag(v2))
    assert got == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("d", [2, 10, 64])
def test_random_spd_agrees_with_symmetric_eigh_form(d):
    rng = np.random.default_rng(d)
    args = (rng.normal(size=d), random_spd(rng, d), rng.normal(size=d), random_spd(rng, d))
    assert metrics.frechet_distance(*args) == pytest.approx(fd_eigh(*args), rel=1e-8)


def test_singular_product_retries_with_eps(caplog):
    # sqrtm of the nilpotent product [[0, 1], [0, 0]] is non-finite; the retry adds eps*I to both.
    eps = 1e-6
    sigma1, sigma2 = np.array([[0.0, 1.0], [0.0, 0.0]]), np.eye(2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
        assert not np.isfinite(scipy.linalg.sqrtm(sigma1 @ sigma2)).all()
    with caplog.at_level(logging.WARNING, logger="adapt_jax.evaluation.metrics"):
        got = metrics.frechet_distance(np.zeros(2), sigma1, np.zeros(2), sigma2, eps=eps)
    # Tr sqrtm([[e, 1], [0, e]] (1 + e)) = 2 sqrt(e (1 + e)).
    assert got == pytest.approx(0.0 + 2.0 - 4.0 * np.sqrt(eps * (1 + eps)), rel=1e-9)
    assert "singular product" in caplog.text


def test_large_imaginary_component_is_an_error():
    with pytest.raises(ValueError, match="imaginary"):
        metrics.frechet_distance(np.zeros(2), np.diag([-1.0, 1.0]), np.zeros(2), np.eye(2))


def test_mismatched_statistics_are_rejected():
    with pytest.raises(ValueError, match="mismatched"):
        metrics.frechet_distance(np.zeros(3), np.eye(3), np.zeros(2), np.eye(2))


def test_streaming_statistics_equal_two_pass_cov():
    x = np.random.default_rng(2).normal(5.0, 2.0, size=(103, 7))
    acc = metrics.StatsAccumulator()
    for chunk in np.array_split(x, [1, 40, 41, 90]):
        acc.update(chunk)
    mu, sigma = acc.finalize()
    np.testing.assert_allclose(mu, x.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(sigma, np.cov(x, rowvar=False), rtol=1e-10)
    assert acc.count == 103


def test_statistics_need_two_vectors():
    with pytest.raises(ValueError, match="at least 2"):
        metrics.feature_statistics(np.zeros((1, 4)))


def test_inception_score_uniform_predictions_is_one():
    mean, std = metrics.inception_score(np.full((100, 1008), 1.0 / 1008))
    assert mean == pytest.approx(1.0, abs=1e-12) and std == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("k", [1, 4, 10])
def test_inception_score_confident_and_even_over_k_classes_is_k(k):
    labels = np.arange(10 * k * 3) % k  # every split holds each class equally often
    mean, std = metrics.inception_score(np.eye(20)[labels])
    assert mean == pytest.approx(k, rel=1e-12) and std == pytest.approx(0.0, abs=1e-12)


def test_inception_score_two_symmetric_soft_classes():
    a = 0.8
    probs = np.tile([[a, 1 - a], [1 - a, a]], (50, 1))
    entropy = -(a * np.log(a) + (1 - a) * np.log(1 - a))
    mean, _ = metrics.inception_score(probs)
    assert mean == pytest.approx(2.0 * np.exp(-entropy), rel=1e-12)


def test_inception_score_uses_softmax_of_logits():
    logits = np.random.default_rng(3).normal(size=(20, 5))
    probs = metrics.softmax(logits)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    np.testing.assert_allclose(probs, np.exp(logits) / np.exp(logits).sum(1, keepdims=True))


def test_inception_score_needs_a_sample_per_split():
    with pytest.raises(ValueError):
        metrics.inception_score(np.full((5, 3), 1 / 3), splits=10)


def test_stats_file_round_trip_and_kind_check(tmp_path):
    rng = np.random.default_rng(4)
    mu, sigma = rng.normal(size=3), random_spd(rng, 3)
    path = str(tmp_path / "s.npz")
    metrics.save_stats(path, mu, sigma, kind="inception_pool3")
    got_mu, got_sigma = metrics.load_stats(path, expected_kind="inception_pool3")
    np.testing.assert_array_equal(got_mu, mu)
    np.testing.assert_array_equal(got_sigma, sigma)
    with pytest.raises(ValueError, match="cfd_v1"):
        metrics.load_stats(path, expected_kind="cfd_v1")
    np.savez(tmp_path / "plain.npz", mu=mu, sigma=sigma)  # pytorch-fid/TTUR files have no kind
    metrics.load_stats(str(tmp_path / "plain.npz"), expected_kind="inception_pool3")
