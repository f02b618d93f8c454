"""Precision and recall (k-NN manifolds) on constructed feature sets and against brute force."""

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from adapt_jax.evaluation import precision_recall as pr


def gaussian(n, d=8, seed=0, shift=0.0):
    return np.random.default_rng(seed).normal(size=(n, d)) + shift


def brute_force(real, fake, k):
    """Independent form: full distance matrices, sorted rows, k-th neighbour without self."""
    def radii(x):
        return np.sort(cdist(x, x), axis=1)[:, k]  # column 0 is the point itself

    precision = np.mean((cdist(fake, real) <= radii(real)[None, :]).any(axis=1))
    recall = np.mean((cdist(real, fake) <= radii(fake)[None, :]).any(axis=1))
    return {"precision": precision, "recall": recall}


def test_identical_sets_score_one_and_one():
    real = gaussian(200)
    assert pr.precision_recall(real, real.copy()) == {"precision": 1.0, "recall": 1.0}


def test_collapsed_generator_has_precision_but_no_recall():
    real = gaussian(300)
    fake = real[:1] + 1e-3 * gaussian(300, seed=1)  # every sample ~ one real point
    got = pr.precision_recall(real, fake)
    assert got["precision"] == 1.0
    assert got["recall"] <= 2 / 300  # only the real points the collapse sits on


def test_far_disjoint_set_has_neither():
    real = gaussian(200)
    assert pr.precision_recall(real, gaussian(200, seed=1, shift=50.0)) == {
        "precision": 0.0, "recall": 0.0}


def test_generator_missing_half_the_data_has_half_the_recall():
    """Real data in two far clusters; one generator draws both, the other only the first."""
    real = np.concatenate([gaussian(200, seed=0), gaussian(200, seed=1, shift=40.0)])
    both = pr.precision_recall(
        real, np.concatenate([gaussian(200, seed=2), gaussian(200, seed=3, shift=40.0)]))
    half = pr.precision_recall(real, gaussian(400, seed=2))
    assert half["recall"] <= 0.5 < both["recall"]
    assert half["recall"] == pytest.approx(both["recall"] / 2, abs=0.1)
    assert half["precision"] == pytest.approx(both["precision"], abs=0.1)


@pytest.mark.parametrize("k", [1, 3, 5])
def test_matches_brute_force_on_random_data(k, monkeypatch):
    real, fake = gaussian(150, d=5, seed=3), gaussian(120, d=5, seed=4, shift=0.4)
    # Tiny blocks: the blockwise loop must cut rows without changing anything.
    monkeypatch.setattr(pr, "BLOCK_ELEMENTS", 7 * 150)
    got = pr.precision_recall(real, fake, k=k)
    want = brute_force(real, fake, k)
    assert got == pytest.approx(want, abs=0)
    assert 0.0 < got["precision"] < 1.0 and 0.0 < got["recall"] < 1.0


def test_passed_real_radii_are_used_as_given():
    real, fake = gaussian(100, seed=5), gaussian(100, seed=6, shift=0.3)
    radii = pr.knn_radii(real, 3)
    np.testing.assert_allclose(np.sqrt(radii), np.sort(cdist(real, real), axis=1)[:, 3],
                               rtol=1e-9, atol=1e-12)
    assert pr.precision_recall(real, fake, 3, radii) == pr.precision_recall(real, fake, 3)
    assert pr.precision_recall(real, fake, 3, np.zeros(100))["precision"] == 0.0


def test_bad_inputs_are_value_errors():
    with pytest.raises(ValueError, match="k=3 needs at least 4"):
        pr.knn_radii(gaussian(3), 3)
    with pytest.raises(ValueError, match="mismatched"):
        pr.coverage(gaussian(5, d=4), gaussian(5, d=3), np.ones(5))
    with pytest.raises(ValueError, match=r"\(n, d\)"):
        pr.precision_recall(np.zeros(5), gaussian(5))
