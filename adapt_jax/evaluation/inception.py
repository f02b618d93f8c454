"""InceptionV3 for FID/IS: the 2015-12-05 TensorFlow graph as ported by pytorch-fid.

The FID graph differs from torchvision's InceptionV3 in ways that change FID values, so they are
reproduced here: the pooling branches of the A/C/E blocks average over valid pixels only
(`count_include_pad=False`), the last block (Mixed_7c) max-pools instead of average-pooling, and
the classifier has 1008 outputs. Parameter names follow the PyTorch module names so the converter
(`convert_pytorch_fid.py`) is a plain rename + transpose.

Outputs: `pool` (N, 2048), the FID features (`pool_3`), and `logits` (N, 1008) = pool @ W without
the bias, which is what the TF Inception Score code computes from `softmax/logits/MatMul`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from adapt_jax.evaluation import random_init, storage
from adapt_jax.evaluation.batching import BatchedApply

INPUT_SIZE = 299
POOL_DIM = 2048
NUM_LOGITS = 1008
Precision = Any  # jax.lax.Precision | str | None


class BasicConv(nn.Module):
    """Conv (no bias) -> BatchNorm (eps 1e-3, running statistics) -> ReLU."""

    features: int
    kernel: tuple[int, int]
    strides: int = 1
    padding: tuple[int, int] = (0, 0)
    precision: Precision = "highest"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        pad = [(self.padding[0], self.padding[0]), (self.padding[1], self.padding[1])]
        x = nn.Conv(self.features, self.kernel, strides=self.strides, padding=pad, use_bias=False,
                    precision=self.precision, name="conv")(x)
        x = nn.BatchNorm(use_running_average=True, epsilon=1e-3, name="bn")(x)
        return nn.relu(x)


def _avg_pool_valid(x: jax.Array) -> jax.Array:
    """3x3/1 average over in-image pixels only (the TF graph's SAME pooling)."""
    return nn.avg_pool(x, (3, 3), strides=(1, 1), padding=((1, 1), (1, 1)),
                       count_include_pad=False)


def _max_pool_s2(x: jax.Array) -> jax.Array:
    return nn.max_pool(x, (3, 3), strides=(2, 2), padding="VALID")


class InceptionA(nn.Module):
    """Mixed_5b/c/d (35x35)."""

    pool_features: int
    precision: Precision = "highest"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        conv = _conv_factory(self.precision)
        b1 = conv(64, 1, name="branch1x1")(x)
        b5 = conv(48, 1, name="branch5x5_1")(x)
        b5 = conv(64, 5, padding=2, name="branch5x5_2")(b5)
        b3 = conv(64, 1, name="branch3x3dbl_1")(x)
        b3 = conv(96, 3, padding=1, name="branch3x3dbl_2")(b3)
        b3 = conv(96, 3, padding=1, name="branch3x3dbl_3")(b3)
        bp = conv(self.pool_features, 1, name="branch_pool")(_avg_pool_valid(x))
        return jnp.concatenate([b1, b5, b3, bp], axis=-1)


class InceptionB(nn.Module):
    """Mixed_6a: 35x35 -> 17x17 reduction."""

    precision: Precision = "highest"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        conv = _conv_factory(self.precision)
        b3 = conv(384, 3, strides=2, name="branch3x3")(x)
        bd = conv(64, 1, name="branch3x3dbl_1")(x)
        bd = conv(96, 3, padding=1, name="branch3x3dbl_2")(bd)
        bd = conv(96, 3, strides=2, name="branch3x3dbl_3")(bd)
        return jnp.concatenate([b3, bd, _max_pool_s2(x)], axis=-1)


class InceptionC(nn.Module):
    """Mixed_6b..e (17x17) with factorised 7x7 convolutions."""

    channels_7x7: int
    precision: Precision = "highest"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        conv, c7 = _conv_factory(self.precision), self.channels_7x7
        b1 = conv(192, 1, name="branch1x1")(x)
        b7 = conv(c7, 1, name="branch7x7_1")(x)
        b7 = conv(c7, (1, 7), padding=(0, 3), name="branch7x7_2")(b7)
        b7 = conv(192, (7, 1), padding=(3, 0), name="branch7x7_3")(b7)
        bd = conv(c7, 1, name="branch7x7dbl_1")(x)
        bd = conv(c7, (7, 1), padding=(3, 0), name="branch7x7dbl_2")(bd)
        bd = conv(c7, (1, 7), padding=(0, 3), name="branch7x7dbl_3")(bd)
        bd = conv(c7, (7, 1), padding=(3, 0), name="branch7x7dbl_4")(bd)
        bd = conv(192, (1, 7), padding=(0, 3), name="branch7x7dbl_5")(bd)
        bp = conv(192, 1, name="branch_pool")(_avg_pool_valid(x))
        return jnp.concatenate([b1, b7, bd, bp], axis=-1)


class InceptionD(nn.Module):
    """Mixed_7a: 17x17 -> 8x8 reduction."""

    precision: Precision = "highest"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        conv = _conv_factory(self.precision)
        b3 = conv(192, 1, name="branch3x3_1")(x)
        b3 = conv(320, 3, strides=2, name="branch3x3_2")(b3)
        b7 = conv(192, 1, name="branch7x7x3_1")(x)
        b7 = conv(192, (1, 7), padding=(0, 3), name="branch7x7x3_2")(b7)
        b7 = conv(192, (7, 1), padding=(3, 0), name="branch7x7x3_3")(b7)
        b7 = conv(192, 3, strides=2, name="branch7x7x3_4")(b7)
        return jnp.concatenate([b3, b7, _max_pool_s2(x)], axis=-1)


class InceptionE(nn.Module):
    """Mixed_7b (average pool branch) and Mixed_7c (max pool branch, the 2015 graph's quirk)."""

    max_pool_branch: bool = False
    precision: Precision = "highest"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        conv = _conv_factory(self.precision)
        b1 = conv(320, 1, name="branch1x1")(x)
        b3 = conv(384, 1, name="branch3x3_1")(x)
        b3 = jnp.concatenate([conv(384, (1, 3), padding=(0, 1), name="branch3x3_2a")(b3),
                              conv(384, (3, 1), padding=(1, 0), name="branch3x3_2b")(b3)], -1)
        bd = conv(448, 1, name="branch3x3dbl_1")(x)
        bd = conv(384, 3, padding=1, name="branch3x3dbl_2")(bd)
        bd = jnp.concatenate([conv(384, (1, 3), padding=(0, 1), name="branch3x3dbl_3a")(bd),
                              conv(384, (3, 1), padding=(1, 0), name="branch3x3dbl_3b")(bd)], -1)
        if self.max_pool_branch:
            pooled = nn.max_pool(x, (3, 3), strides=(1, 1), padding=((1, 1), (1, 1)))
        else:
            pooled = _avg_pool_valid(x)
        bp = conv(192, 1, name="branch_pool")(pooled)
        return jnp.concatenate([b1, b3, bd, bp], axis=-1)


def _conv_factory(precision: Precision):
    """`conv(features, kernel, strides=1, padding=0, name=...)` with int-or-pair arguments."""

    def pair(v: int | Sequence[int]) -> tuple[int, int]:
        return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))

    def conv(features: int, kernel, strides: int = 1, padding=0, *, name: str) -> BasicConv:
        return BasicConv(features, pair(kernel), strides, pair(padding), precision, name=name)

    return conv


class UnbiasedLogits(nn.Module):
    """The 1008-way classifier layer; returns pool @ W *without* the bias.

    The bias is kept as a parameter so the weight file holds the whole PyTorch state dict, but the
    reference TF Inception Score multiplies `pool_3` by the `softmax/logits/MatMul` weights only.
    """

    features: int
    precision: Precision = "highest"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        kernel = self.param("kernel", nn.initializers.lecun_normal(), (x.shape[-1], self.features))
        self.param("bias", nn.initializers.zeros, (self.features,))
        return jnp.dot(x, kernel, precision=self.precision)


class InceptionV3(nn.Module):
    """FID InceptionV3 on preprocessed (N, 299, 299, 3) inputs in [-1, 1] -> {'pool', 'logits'}."""

    precision: Precision = "highest"

    @nn.compact
    def __call__(self, x: jax.Array) -> dict[str, jax.Array]:
        conv, p = _conv_factory(self.precision), self.precision
        x = conv(32, 3, strides=2, name="Conv2d_1a_3x3")(x)
        x = conv(32, 3, name="Conv2d_2a_3x3")(x)
        x = conv(64, 3, padding=1, name="Conv2d_2b_3x3")(x)
        x = _max_pool_s2(x)
        x = conv(80, 1, name="Conv2d_3b_1x1")(x)
        x = conv(192, 3, name="Conv2d_4a_3x3")(x)
        x = _max_pool_s2(x)
        x = InceptionA(32, p, name="Mixed_5b")(x)
        x = InceptionA(64, p, name="Mixed_5c")(x)
        x = InceptionA(64, p, name="Mixed_5d")(x)
        x = InceptionB(p, name="Mixed_6a")(x)
        for name, c7 in (("Mixed_6b", 128), ("Mixed_6c", 160), ("Mixed_6d", 160),
                         ("Mixed_6e", 192)):
            x = InceptionC(c7, p, name=name)(x)
        x = InceptionD(p, name="Mixed_7a")(x)
        x = InceptionE(False, p, name="Mixed_7b")(x)
        x = InceptionE(True, p, name="Mixed_7c")(x)
        pool = jnp.mean(x, axis=(1, 2))
        logits = UnbiasedLogits(NUM_LOGITS, p, name="fc")(pool)
        return {"pool": pool, "logits": logits}


def preprocess(images: jax.Array) -> jax.Array:
    """uint8 (N, H, W, 3) -> float32 (N, 299, 299, 3) in [-1, 1], as pytorch-fid does.

    pytorch-fid scales to [0, 1], resizes bilinearly (half-pixel centres, no antialiasing) and
    maps to [-1, 1]; the resize is linear, so scaling first gives the same numbers.
    """
    x = images.astype(jnp.float32) / 255.0
    n, h, w, c = x.shape
    if (h, w) != (INPUT_SIZE, INPUT_SIZE):
        x = jax.image.resize(x, (n, INPUT_SIZE, INPUT_SIZE, c), "bilinear", antialias=False)
    return 2.0 * x - 1.0


def apply_uint8(variables: dict[str, Any], images: jax.Array,
                precision: Precision = "highest") -> dict[str, jax.Array]:
    """Inception outputs for raw uint8 images (what the evaluator jits)."""
    return InceptionV3(precision).apply(variables, preprocess(images))


def _features(variables: dict[str, Any], images: jax.Array) -> dict[str, jax.Array]:
    out = apply_uint8(variables, images)
    return {"features": out["pool"], "logits": out["logits"]}


def feature_extractor(variables: dict[str, Any], batch_size: int) -> BatchedApply:
    """uint8 images -> {'features': pool (n, 2048), 'logits': (n, 1008)}, sharded over devices.

    `_features` is module-level so every extractor shares one jit cache (one compile per shape).
    """
    return BatchedApply(_features, variables, batch_size)


def init_inception_params(seed: int = 0) -> dict[str, Any]:
    """Random weights (random BN statistics too): for tests and pipeline checks only."""
    return storage.unflatten(random_init.random_variables(variable_shapes(), seed,
                                                          random_affine=True))


def variable_shapes() -> dict[str, tuple[int, ...]]:
    """Flat name -> shape of every InceptionV3 variable (traced, nothing is computed)."""
    x = jax.ShapeDtypeStruct((1, INPUT_SIZE, INPUT_SIZE, 3), jnp.float32)
    return random_init.traced_shapes(InceptionV3().init, x)


def check_flat_variables(flat: dict[str, np.ndarray], origin: str) -> None:
    """Raises ValueError listing missing/unexpected/mis-shaped arrays against the architecture."""
    expected = variable_shapes()
    missing = sorted(set(expected) - set(flat))
    unexpected = sorted(set(flat) - set(expected))
    wrong = sorted(k for k in set(expected) & set(flat) if tuple(flat[k].shape) != expected[k])
    if missing or unexpected or wrong:
        raise ValueError(
            f"{origin} does not hold FID InceptionV3 weights: missing {missing[:5]} "
            f"({len(missing)}), unexpected {unexpected[:5]} ({len(unexpected)}), wrong shape "
            f"{[(k, flat[k].shape, expected[k]) for k in wrong[:5]]} ({len(wrong)})")


def save_inception_params(variables: dict[str, Any], path: str) -> None:
    """Writes the converter's format: `.npz` of float32 arrays named 'params/Mixed_5b/...'."""
    flat = {k: np.asarray(v, np.float32) for k, v in storage.flatten(variables).items()}
    check_flat_variables(flat, "the variables to save")
    storage.save_npz(path, flat)


def load_inception_params(path: str) -> dict[str, Any]:
    """Reads weights written by `convert_pytorch_fid` or `save_inception_params` (local file)."""
    if not os.path.exists(path):
        raise FileNotFoundError(path)
    flat = storage.load_npz(path)
    check_flat_variables(flat, path)
    return storage.unflatten({k: np.asarray(v, np.float32) for k, v in flat.items()})
