"""Offline sample-quality score: Fréchet distance on features of a small classifier ("CFD").

Used where the FID Inception weights are unavailable. The classifier is trained once per data
source, deterministically, on the source's own images (its class labels; a 4-way rotation task when
the source is unlabelled) and cached. Its pre-activation penultimate features feed the same
Fréchet distance as FID. The number is only comparable between runs using the same source and
classifier version: it is not FID.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from adapt_jax.evaluation import random_init, storage
from adapt_jax.evaluation.batching import BatchedApply

logger = logging.getLogger(__name__)

# Bump when the architecture or training changes, so stale cached weights are not reused.
CLASSIFIER_VERSION = 1
NUM_ROTATIONS = 4


@dataclasses.dataclass(frozen=True)
class ClassifierConfig:
    """Sized so that training on the 16x16 digits takes seconds on two CPU cores."""

    steps: int = 300
    batch_size: int = 32
    learning_rate: float = 3e-3
    width: int = 16
    feature_dim: int = 64
    seed: int = 0


class SmallCNN(nn.Module):
    """[conv-relu-conv-relu-avgpool] x stages -> global mean -> dense (features) -> relu -> dense.

    Stages halve the resolution down to about 4x4, so one definition serves 16..128 px sources.
    """

    num_outputs: int
    resolution: int
    width: int = 16
    feature_dim: int = 64

    @nn.compact
    def __call__(self, images: jax.Array) -> tuple[jax.Array, jax.Array]:
        x = images.astype(jnp.float32) / 127.5 - 1.0
        for i in range(num_stages(self.resolution)):
            ch = min(self.width * 2**i, 256)
            x = nn.relu(nn.Conv(ch, (3, 3), name=f"conv{i}a")(x))
            x = nn.relu(nn.Conv(ch, (3, 3), name=f"conv{i}b")(x))
            x = nn.avg_pool(x, (2, 2), strides=(2, 2))
        x = jnp.mean(x, axis=(1, 2))
        features = nn.Dense(self.feature_dim, name="features")(x)
        logits = nn.Dense(self.num_outputs, name="head")(nn.relu(features))
        return features, logits


def num_stages(resolution: int) -> int:
    return max(1, int(round(np.log2(resolution / 4))))


def num_outputs(source: Any) -> int:
    """Class count, or the rotation task's 4 outputs when the source has no labels."""
    return int(source.num_classes) if int(source.num_classes) > 0 else NUM_ROTATIONS


def _task_batch(source: Any, indices: np.ndarray, rng: np.random.Generator
                ) -> tuple[np.ndarray, np.ndarray]:
    images, labels = source.get(indices)
    images = np.asarray(images)
    if int(source.num_classes) > 0:
        return images, np.asarray(labels, np.int32)
    rotations = rng.integers(0, NUM_ROTATIONS, size=len(indices)).astype(np.int32)
    pairs = zip(images, rotations, strict=True)
    rotated = np.stack([np.rot90(img, k, axes=(0, 1)) for img, k in pairs])
    return rotated, rotations


def train_classifier(source: Any, config: ClassifierConfig = ClassifierConfig()) -> dict:
    """Trains the feature classifier on `source`; same source + config -> same weights."""
    model = SmallCNN(num_outputs(source), int(source.resolution), config.width, config.feature_dim)
    r = int(source.resolution)
    shapes = random_init.traced_shapes(model.init, jax.ShapeDtypeStruct((1, r, r, 3), jnp.uint8))
    params = storage.unflatten(random_init.random_variables(shapes, config.seed))
    tx = optax.adam(config.learning_rate)
    opt_state = tx.init(params)

    @jax.jit
    def step(params, opt_state, images, labels):
        def loss_fn(p):
            logits = model.apply(p, images)[1]
            return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = tx.update(grads, opt_state)
        return optax.apply_updates(params, updates), opt_state, loss

    rng = np.random.default_rng(config.seed)
    batch = min(config.batch_size, int(source.num_examples))
    for _ in range(config.steps):
        idx = np.sort(rng.choice(int(source.num_examples), size=batch, replace=False))
        images, labels = _task_batch(source, idx, rng)
        params, opt_state, loss = step(params, opt_state, images, labels)
    logger.info("CFD classifier: %d steps, final batch loss %.4f", config.steps, float(loss))
    return jax.device_get(params)


def load_or_train(source: Any, cache_dir: str | None,
                  config: ClassifierConfig = ClassifierConfig()) -> dict:
    """Cached weights for (source, config, version), training them on a cache miss."""
    key = storage.fingerprint(CLASSIFIER_VERSION, dataclasses.astuple(config),
                              storage.source_fingerprint(source))
    path = os.path.join(cache_dir, f"cfd_classifier_{key}.npz") if cache_dir else None
    flat = storage.cached(path, lambda: storage.flatten(train_classifier(source, config)))
    return storage.unflatten(flat)


def classifier_features(source: Any, params: dict, batch_size: int,
                        config: ClassifierConfig = ClassifierConfig()) -> BatchedApply:
    """uint8 images at the source resolution -> {'features': (n, feature_dim)}, plus
    'class_logits' (n, num_classes) when the source is labelled (the evaluator's class accuracy
    of a conditional generator)."""
    model = SmallCNN(num_outputs(source), int(source.resolution), config.width, config.feature_dim)
    labelled = int(source.num_classes) > 0

    def fn(variables, images):
        features, logits = model.apply(variables, images)
        return {"features": features, "class_logits": logits} if labelled else {
            "features": features}

    return BatchedApply(fn, params, batch_size)
