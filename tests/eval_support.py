"""Test-only data source for the eval tests: sklearn digits, 16x16 RGB, with the Source contract.

Built here (not from adapt_jax.data) so the eval tests depend only on the contract they consume.
"""

from __future__ import annotations

import numpy as np

RESOLUTION = 16


def digits_16() -> tuple[np.ndarray, np.ndarray]:
    """(1797, 16, 16, 3) uint8 digits (8x8 upsampled by pixel repetition) and int32 labels."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)
    x = np.repeat(np.repeat(x, 2, axis=1), 2, axis=2)
    return np.repeat(x[..., None], 3, axis=-1), bunch.target.astype(np.int32)


class ArraySource:
    """num_examples / num_classes / resolution / get(indices) over in-memory arrays."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, num_classes: int,
                 description: str = "test digits"):
        self.images, self.labels = images, labels
        self.num_examples = len(images)
        self.num_classes = num_classes
        self.resolution = images.shape[1]
        self.description = description

    def get(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        indices = np.asarray(indices)
        return self.images[indices], self.labels[indices]


def digits_split(num_train: int = 1200, labelled: bool = True
                 ) -> tuple[ArraySource, np.ndarray, np.ndarray]:
    """A shuffled training source and the remaining (held-out) images and labels."""
    images, labels = digits_16()
    perm = np.random.default_rng(0).permutation(len(images))
    train, held = perm[:num_train], perm[num_train:]
    source = ArraySource(images[train], labels[train] if labelled else 0 * labels[train],
                         10 if labelled else 0, f"test digits[:{num_train}]")
    return source, images[held], labels[held]


def cycling_generator(images: np.ndarray, labels: np.ndarray | None = None):
    """generate(n) that walks through `images` in order, wrapping around; with `labels` it
    returns (images, labels) as a conditional generator does."""
    state = {"pos": 0}

    def generate(n: int):
        idx = (state["pos"] + np.arange(n)) % len(images)
        state["pos"] += n
        return images[idx] if labels is None else (images[idx], labels[idx])

    return generate
