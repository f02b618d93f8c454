"""The offline classifier score (CFD) ranks obviously different generators correctly."""

import dataclasses

import jax
import numpy as np
import pytest
from eval_support import digits_split

from adapt_jax.evaluation import classifier_score, metrics


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    source, held_images, held_labels = digits_split(1200)
    cache_dir = str(tmp_path_factory.mktemp("cfd_cache"))
    params = classifier_score.load_or_train(source, cache_dir)
    return source, held_images, held_labels, params, cache_dir


def blur(images: np.ndarray) -> np.ndarray:
    x = images.astype(np.float64)
    shifted = [np.roll(x, s, axis=a) for s in (1, -1) for a in (1, 2)]
    return np.rint((x + sum(shifted)) / 5).astype(np.uint8)


def test_scores_rank_real_corrupted_collapsed_and_noise(trained):
    source, held_images, _, params, _ = trained
    extract = classifier_score.classifier_features(source, params, batch_size=100)
    reference = metrics.feature_statistics(extract(source.images)["features"])

    def cfd(images):
        stats = metrics.feature_statistics(extract(images)["features"])
        return metrics.frechet_distance(*stats, *reference)

    rng = np.random.default_rng(0)
    real = held_images[:500]
    scores = {
        "real": cfd(real),
        "noisy": cfd(np.clip(real + rng.normal(0, 40, real.shape), 0, 255).astype(np.uint8)),
        "blurred": cfd(blur(real)),
        "collapsed": cfd(np.repeat(real[:1], 500, axis=0)),
        "noise": cfd(rng.integers(0, 256, real.shape, dtype=np.uint8)),
    }
    corrupted = max(scores["noisy"], scores["blurred"])
    assert scores["real"] < 0.25 * min(scores["noisy"], scores["blurred"]), scores
    assert corrupted < 0.5 * min(scores["collapsed"], scores["noise"]), scores
    assert scores["real"] < 0.02 * min(scores["collapsed"], scores["noise"]), scores


def test_classifier_learns_the_labels(trained):
    source, held_images, held_labels, params, _ = trained
    logits = classifier_score.SmallCNN(10, source.resolution).apply(params, held_images)[1]
    assert (np.argmax(logits, axis=-1) == held_labels).mean() > 0.8


def test_cached_weights_are_reused_without_training(trained, monkeypatch):
    source, _, _, params, cache_dir = trained

    def fail(*args, **kwargs):
        raise AssertionError("retrained despite a cache hit")

    monkeypatch.setattr(classifier_score, "train_classifier", fail)
    again = classifier_score.load_or_train(source, cache_dir)
    for x, y in zip(jax.tree.leaves(again), jax.tree.leaves(params), strict=True):
        np.testing.assert_array_equal(x, y)


def test_unlabelled_source_trains_a_rotation_task_deterministically():
    source, _, _ = digits_split(200, labelled=False)
    assert source.num_classes == 0 and classifier_score.num_outputs(source) == 4
    config = dataclasses.replace(classifier_score.ClassifierConfig(), steps=3)
    a = classifier_score.train_classifier(source, config)
    b = classifier_score.train_classifier(source, config)
    assert a["params"]["head"]["kernel"].shape[-1] == 4
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(x, y)


def test_stage_count_scales_with_resolution():
    assert [classifier_score.num_stages(r) for r in (8, 16, 32, 48, 64, 128)] == [1, 2, 3, 4, 4, 5]
