"""The trainer's evaluation entry point: FID (+IS) when Inception weights exist, else CFD, each
with precision and recall in the same feature space.

`create_evaluator` picks the feature space once (and says which, loudly, when it is not FID),
prepares the reference statistics (a stats file, or the data source's own, cached) and the real
features precision/recall compare with (a fixed subset of the source, cached), and returns an
`Evaluator` whose `evaluate(generate)` streams generated batches through the features.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from adapt_jax.config_base import ConfigError
from adapt_jax.evaluation import classifier_score, inception, metrics, precision_recall, storage

logger = logging.getLogger(__name__)

Extractor = Callable[[np.ndarray], dict[str, np.ndarray]]
# n -> n uint8 images, or (images, their class labels) from a conditional generator: with labels
# and a labelled source's classifier the evaluator also reports class accuracy.
Generate = Callable[[int], np.ndarray | tuple[np.ndarray, np.ndarray | None]]

INCEPTION_KIND = "inception_pool3"
# Reference statistics of a source use at most this many images (CIFAR-10 train = all 50k).
REFERENCE_CAP = 50_000
IS_SPLITS = 10
CONVERTER_HINT = (
    "The FID InceptionV3 weights cannot be downloaded here. Convert pytorch-fid's "
    "pt_inception-2015-12-05-6726825d.pth on a machine with torch: `python -m "
    "adapt_jax.evaluation.convert_pytorch_fid --pth pt_inception-2015-12-05-6726825d.pth --out "
    "inception_fid.npz`, then set eval.inception_path to that file."
)


@dataclasses.dataclass(frozen=True)
class FeatureSpace:
    """Which network turns images into features, and how its statistics are labelled."""

    name: str  # primary metric key: 'fid' | 'cfd'
    description: str
    kind: str  # stored in statistics files and checked when they are loaded
    cache_tag: str  # identifies the network's weights in cache keys
    extract: Extractor


def feature_space(inception_path: str, source: Any, cache_dir: str,
                  batch_size: int) -> FeatureSpace:
    """Inception features if `inception_path` is set (it must exist), else the CFD classifier."""
    if inception_path:
        if not os.path.exists(inception_path):
            raise ValueError(f"eval.inception_path={inception_path!r} does not exist. "
                             f"{CONVERTER_HINT} Or set eval.inception_path='' to use the offline "
                             "classifier score (cfd) instead.")
        variables = inception.load_inception_params(inception_path)
        return FeatureSpace(
            "fid", "FID (InceptionV3 2015-12-05 pool_3 features)", INCEPTION_KIND,
            storage.file_fingerprint(inception_path),
            inception.feature_extractor(variables, batch_size))
    logger.warning(
        "eval.inception_path is empty: FID and IS are SKIPPED. Reporting 'cfd', a Fréchet "
        "distance on features of a small classifier trained on this dataset; it is not FID and "
        "not comparable with published numbers (eval.fid_stats_path is ignored). %s",
        CONVERTER_HINT)
    config = classifier_score.ClassifierConfig()
    params = classifier_score.load_or_train(source, cache_dir, config)
    tag = storage.fingerprint(*storage.flatten(params).values())
    return FeatureSpace("cfd", "classifier Fréchet distance (not FID)",
                        f"cfd_v{classifier_score.CLASSIFIER_VERSION}:{tag}", tag,
                        classifier_score.classifier_features(source, params, batch_size, config))


@dataclasses.dataclass(frozen=True)
class Summary:
    mu: np.ndarray
    sigma: np.ndarray
    logits: np.ndarray | None  # only for feature spaces with a classifier head worth an IS
    features: np.ndarray | None = None  # only when asked for (precision/recall)
    class_logits: np.ndarray | None = None  # the labelled source's classifier, when it has one


def summarize(batches: Iterator[np.ndarray], extract: Extractor,
              keep_features: bool = False) -> Summary:
    """Feature mean/covariance (streaming), the logits of all images when the network has them,
    and all features (float32) when `keep_features`."""
    acc, outputs = metrics.StatsAccumulator(), {"logits": [], "class_logits": [], "features": []}
    for images in batches:
        out = extract(images)
        acc.update(out["features"])
        for name in ("logits", "class_logits"):
            if name in out:
                outputs[name].append(out[name])
        if keep_features:
            outputs["features"].append(np.asarray(out["features"], np.float32))
    mu, sigma = acc.finalize()
    joined = {k: np.concatenate(v) if v else None for k, v in outputs.items()}
    return Summary(mu, sigma, joined["logits"], joined["features"], joined["class_logits"])


def source_batches(source: Any, num: int, batch_size: int) -> Iterator[np.ndarray]:
    """`num` images of the source: all of them, or a fixed random subset when capped."""
    total = int(source.num_examples)
    if num >= total:
        order = np.arange(total)
    else:
        order = np.sort(np.random.default_rng(0).permutation(total)[:num])
    for start in range(0, len(order), batch_size):
        yield np.asarray(source.get(order[start:start + batch_size])[0])


def generated_batches(generate: Generate, num: int, batch_size: int, resolution: int,
                      labels: list[np.ndarray] | None = None) -> Iterator[np.ndarray]:
    """Calls `generate` for `num` images and checks each batch is (n, R, R, 3) uint8; the
    labels a conditional `generate` returns are appended to `labels`."""
    for start in range(0, num, batch_size):
        n = min(batch_size, num - start)
        out = generate(n)
        images, batch_labels = out if isinstance(out, tuple) else (out, None)
        images = np.asarray(images)
        if images.dtype != np.uint8 or images.shape != (n, resolution, resolution, 3):
            raise ValueError(f"generate({n}) must return uint8 ({n}, {resolution}, {resolution}, "
                             f"3) images, got {images.dtype} {images.shape}")
        if labels is not None and batch_labels is not None:
            labels.append(np.asarray(batch_labels).reshape(n))
        yield images


def reference_stats(space: FeatureSpace, source: Any, cache_dir: str, batch_size: int
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Statistics of the source itself in `space`, computed once per (source, network)."""
    num = min(int(source.num_examples), REFERENCE_CAP)
    key = storage.fingerprint(space.kind, space.cache_tag, num, storage.source_fingerprint(source))
    path = os.path.join(cache_dir, f"ref_stats_{space.name}_{key}.npz") if cache_dir else None

    def compute() -> dict[str, np.ndarray]:
        logger.info("computing %s reference statistics of %d source images", space.name, num)
        s = summarize(source_batches(source, num, batch_size), space.extract)
        return {"mu": s.mu, "sigma": s.sigma}

    arrays = storage.cached(path, compute)
    return arrays["mu"], arrays["sigma"]


def reference_features(space: FeatureSpace, source: Any, num: int, cache_dir: str,
                       batch_size: int, k: int = precision_recall.DEFAULT_K
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Features of a fixed subset of `num` source images and their k-NN radii, computed once
    per (source, network, num, k).

    As many real as generated images (or the whole source when smaller), as in Kynkäänniemi et
    al.: the radii, hence both metrics, depend on the set sizes.
    """
    num = min(int(source.num_examples), num)
    key = storage.fingerprint(space.kind, space.cache_tag, num, k,
                              storage.source_fingerprint(source))
    path = (os.path.join(cache_dir, f"ref_features_{space.name}_{key}.npz") if cache_dir
            else None)

    def compute() -> dict[str, np.ndarray]:
        logger.info("computing %s features of %d source images for precision/recall",
                    space.name, num)
        s = summarize(source_batches(source, num, batch_size), space.extract, keep_features=True)
        return {"features": s.features, "radii": precision_recall.knn_radii(s.features, k)}

    arrays = storage.cached(path, compute)
    return arrays["features"], arrays["radii"]


@dataclasses.dataclass
class Evaluator:
    """`evaluate(generate)` -> {name: Fréchet distance (lower is better), 'precision',
    'recall' (higher is better), ...}, with 'class_accuracy' (the fraction of samples the
    source's classifier assigns to the class they were drawn for) when `generate` returns labels
    and the features come from a labelled source's classifier."""

    space: FeatureSpace
    reference: tuple[np.ndarray, np.ndarray]
    num_samples: int
    batch_size: int
    resolution: int
    real_features: np.ndarray
    real_radii: np.ndarray
    k: int = precision_recall.DEFAULT_K

    @property
    def name(self) -> str:
        return self.space.name

    @property
    def description(self) -> str:
        return self.space.description

    def evaluate(self, generate: Generate) -> dict[str, float]:
        labels: list[np.ndarray] = []
        batches = generated_batches(generate, self.num_samples, self.batch_size, self.resolution,
                                    labels)
        s = summarize(batches, self.space.extract, keep_features=True)
        result = {self.name: metrics.frechet_distance(s.mu, s.sigma, *self.reference)}
        result.update(precision_recall.precision_recall(
            self.real_features, s.features, self.k, self.real_radii))
        if s.logits is not None:
            result["is_mean"], result["is_std"] = metrics.inception_score(
                metrics.softmax(s.logits), IS_SPLITS)
        if labels and s.class_logits is not None:
            drawn = np.concatenate(labels)
            if len(drawn) == len(s.class_logits) and drawn.max() < s.class_logits.shape[1]:
                result["class_accuracy"] = float(np.mean(s.class_logits.argmax(1) == drawn))
        return result


def create_evaluator(eval_cfg: Any, source: Any, cache_dir: str) -> Evaluator:
    """Evaluator for `eval_cfg` (num_samples, batch_size, inception_path, fid_stats_path).

    Precision and recall always compare with the training source's images: a stats file
    (`eval.fid_stats_path`) holds no features.
    """
    k = precision_recall.DEFAULT_K
    if int(eval_cfg.num_samples) <= k or int(source.num_examples) <= k:
        raise ConfigError(f"config.eval.num_samples={eval_cfg.num_samples} with a source of "
                          f"{source.num_examples} images: precision/recall (k={k} nearest "
                          f"neighbours) need more than {k} of each; raise eval.num_samples.")
    batch_size = int(eval_cfg.batch_size)
    space = feature_space(eval_cfg.inception_path, source, cache_dir, batch_size)
    if space.name == "fid" and eval_cfg.fid_stats_path:
        if not os.path.exists(eval_cfg.fid_stats_path):
            raise ValueError(f"eval.fid_stats_path={eval_cfg.fid_stats_path!r} does not exist "
                             "(write one with `python -m adapt_jax.fid_stats`, or leave it empty "
                             "to use the training source's own statistics)")
        reference = metrics.load_stats(eval_cfg.fid_stats_path, expected_kind=INCEPTION_KIND)
        if reference[0].shape != (inception.POOL_DIM,):
            raise ValueError(f"eval.fid_stats_path={eval_cfg.fid_stats_path!r} holds "
                             f"{reference[0].shape[0]}-d statistics, FID needs "
                             f"{inception.POOL_DIM}-d (pool_3)")
    else:
        reference = reference_stats(space, source, cache_dir, batch_size)
    num_samples = int(eval_cfg.num_samples)
    real_features, real_radii = reference_features(space, source, num_samples, cache_dir,
                                                   batch_size, k)
    logger.info("evaluation: %s, precision and recall (k=%d, %d real images) on %d samples",
                space.description, k, len(real_features), num_samples)
    return Evaluator(space, reference, num_samples, batch_size, int(source.resolution),
                     real_features, real_radii, k)
