"""create_evaluator / Evaluator.evaluate and the fid_stats writer, on a 16x16 digits source."""

import logging

import numpy as np
import pytest
from eval_support import cycling_generator, digits_split

from adapt_jax import evaluation
from adapt_jax.config_base import ConfigError, get_base_config
from adapt_jax.evaluation import evaluator, inception, metrics
from adapt_jax.tools import fid_stats


def eval_config(**overrides):
    cfg = get_base_config().eval
    cfg.update(num_samples=300, batch_size=100, inception_path="", fid_stats_path="")
    cfg.update(**overrides)
    return cfg


@pytest.fixture(scope="module")
def data():
    source, held_images, _ = digits_split(1200)
    return source, held_images


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("eval_cache"))


@pytest.fixture(scope="module")
def cfd_evaluator_and_log(data, cache_dir):
    source, _ = data
    handler = _ListHandler()
    logger = logging.getLogger("adapt_jax.evaluation")
    logger.addHandler(handler)
    try:
        ev = evaluation.create_evaluator(eval_config(), source, cache_dir)
    finally:
        logger.removeHandler(handler)
    return ev, handler.records


class _ListHandler(logging.Handler):
    def __init__(self):
        super().__init__(level=logging.WARNING)
        self.records = []

    def emit(self, record):
        self.records.append(record)


def test_empty_inception_path_gives_cfd_with_one_warning(cfd_evaluator_and_log):
    ev, records = cfd_evaluator_and_log
    assert isinstance(ev, evaluation.Evaluator)
    assert ev.name == "cfd"
    assert "not FID" in ev.description
    assert len(records) == 1, [r.getMessage() for r in records]
    message = records[0].getMessage()
    assert "FID and IS are SKIPPED" in message and "eval.inception_path" in message


def test_cfd_evaluate_ranks_real_above_collapse(cfd_evaluator_and_log, data):
    ev, _ = cfd_evaluator_and_log
    _, held_images = data
    real = ev.evaluate(cycling_generator(held_images))
    collapsed = ev.evaluate(lambda n: np.repeat(held_images[:1], n, axis=0))
    assert set(real) == {"cfd", "precision", "recall"}
    assert all(isinstance(v, float) for v in real.values())
    assert real["cfd"] < 0.05 * collapsed["cfd"], (real, collapsed)
    # Held-out digits lie on the real manifold and cover most of it; one repeated digit is a
    # realistic sample that covers (almost) nothing.
    assert real["precision"] > 0.8 and real["recall"] > 0.8, real
    assert collapsed["recall"] < 0.01, collapsed


def test_precision_recall_compare_with_cached_real_features(cfd_evaluator_and_log, data):
    """As many real images as samples (a fixed subset of the source), in the score's features."""
    source, _ = data
    ev, _ = cfd_evaluator_and_log
    assert ev.real_features.shape == (300, 64) and ev.real_radii.shape == (300,)
    subset = next(evaluator.source_batches(source, 300, 300))
    np.testing.assert_allclose(ev.real_features, ev.space.extract(subset)["features"],
                               rtol=1e-5, atol=1e-5)
    # Real training images against their own features: both metrics are 1.
    scores = ev.evaluate(cycling_generator(subset))
    assert (scores["precision"], scores["recall"]) == (1.0, 1.0)


def test_class_accuracy_checks_samples_against_the_labels_they_were_drawn_for(
        cfd_evaluator_and_log, data, cache_dir):
    ev, _ = cfd_evaluator_and_log
    _, held_images, held_labels = digits_split(1200)
    right = ev.evaluate(cycling_generator(held_images, held_labels))
    wrong = ev.evaluate(cycling_generator(held_images, (held_labels + 1) % 10))
    # The source's classifier labels held-out digits mostly right, and almost never as the
    # next class; without labels (above) there is no class_accuracy at all.
    assert right["class_accuracy"] > 0.85 and wrong["class_accuracy"] < 0.1, (right, wrong)
    assert right["cfd"] == wrong["cfd"]  # the labels change nothing else
    # An unlabelled source's classifier solves a rotation task: no class accuracy to report.
    unlabelled, _, _ = digits_split(1200, labelled=False)
    ev_unlabelled = evaluation.create_evaluator(eval_config(), unlabelled, cache_dir)
    assert "class_accuracy" not in ev_unlabelled.evaluate(
        cycling_generator(held_images, held_labels))


def test_too_few_samples_for_precision_recall_is_a_config_error(data, cache_dir):
    source, _ = data
    with pytest.raises(ConfigError, match="eval.num_samples=3"):
        evaluation.create_evaluator(eval_config(num_samples=3), source, cache_dir)


def test_reference_statistics_are_cached(cfd_evaluator_and_log, data, cache_dir, monkeypatch):
    source, _ = data
    ev, _ = cfd_evaluator_and_log

    def fail(*args, **kwargs):
        raise AssertionError("recomputed cached statistics or features")

    monkeypatch.setattr(evaluator, "summarize", fail)
    again = evaluation.create_evaluator(eval_config(), source, cache_dir)
    np.testing.assert_array_equal(again.reference[0], ev.reference[0])
    np.testing.assert_array_equal(again.real_features, ev.real_features)
    np.testing.assert_array_equal(again.real_radii, ev.real_radii)


def test_generate_must_return_uint8_images_at_the_source_resolution(cfd_evaluator_and_log):
    ev, _ = cfd_evaluator_and_log
    with pytest.raises(ValueError, match="uint8"):
        ev.evaluate(lambda n: np.zeros((n, 16, 16, 3), np.float32))
    with pytest.raises(ValueError, match="16, 16, 3"):
        ev.evaluate(lambda n: np.zeros((n, 32, 32, 3), np.uint8))


def test_missing_inception_file_is_a_value_error(data, cache_dir, tmp_path):
    source, _ = data
    cfg = eval_config(inception_path=str(tmp_path / "absent.npz"))
    with pytest.raises(ValueError, match="eval.inception_path") as err:
        evaluation.create_evaluator(cfg, source, cache_dir)
    assert "convert_pytorch_fid" in str(err.value)


def test_fid_stats_writer_with_classifier_features(data, cache_dir, tmp_path):
    source, _ = data
    out = str(tmp_path / "stats.npz")
    mu, sigma = fid_stats.write_source_stats(source, out, inception_path="", cache_dir=cache_dir)
    with np.load(out) as f:
        assert f["mu"].shape == (64,) and f["sigma"].shape == (64, 64)
        assert str(f["kind"]).startswith("cfd_v")
        np.testing.assert_array_equal(f["mu"], mu)
    np.testing.assert_allclose(sigma, sigma.T)


@pytest.fixture(scope="module")
def random_inception_file(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("inception") / "random_inception.npz")
    inception.save_inception_params(inception.init_inception_params(seed=1), path)
    return path


@pytest.mark.slow
def test_fid_path_end_to_end_with_random_inception(data, cache_dir, random_inception_file,
                                                   tmp_path, monkeypatch):
    source, held_images = data
    stats_path = str(tmp_path / "fid_stats.npz")
    mu, sigma = fid_stats.write_source_stats(source, stats_path,
                                             inception_path=random_inception_file,
                                             batch_size=6, num_examples=12)
    assert mu.shape == (2048,) and sigma.shape == (2048, 2048)
    with np.load(stats_path) as f:
        assert str(f["kind"]) == evaluator.INCEPTION_KIND

    # scipy sqrtm of a 2048x2048 product takes ~30 s on two CPU cores; its numerics are covered in
    # test_eval_metrics, so a cheap stand-in checks the wiring here.
    calls = []

    def mean_distance(mu1, sigma1, mu2, sigma2):
        calls.append((mu1.shape, sigma1.shape, mu2.shape, sigma2.shape))
        return float(np.sum((mu1 - mu2) ** 2))

    monkeypatch.setattr(metrics, "frechet_distance", mean_distance)
    cfg = eval_config(inception_path=random_inception_file, fid_stats_path=stats_path,
                      num_samples=12, batch_size=6)
    ev = evaluation.create_evaluator(cfg, source, cache_dir)
    assert ev.name == "fid"
    scores = ev.evaluate(cycling_generator(held_images))
    assert set(scores) == {"fid", "is_mean", "is_std", "precision", "recall"}
    assert calls == [((2048,), (2048, 2048), (2048,), (2048, 2048))]
    assert np.isfinite(scores["fid"]) and scores["is_mean"] >= 1.0 - 1e-9


def test_fid_stats_path_errors(data, cache_dir, random_inception_file, tmp_path):
    source, _ = data
    cfg = eval_config(inception_path=random_inception_file,
                      fid_stats_path=str(tmp_path / "absent.npz"))
    with pytest.raises(ValueError, match="eval.fid_stats_path"):
        evaluation.create_evaluator(cfg, source, cache_dir)
    cfd_stats = str(tmp_path / "cfd.npz")
    metrics.save_stats(cfd_stats, np.zeros(64), np.eye(64), kind="cfd_v1:abc")
    with pytest.raises(ValueError, match="cfd_v1"):
        evaluation.create_evaluator(eval_config(inception_path=random_inception_file,
                                                fid_stats_path=cfd_stats), source, cache_dir)
