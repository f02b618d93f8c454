"""scikit-learn's 1797 8x8 handwritten digits: real images that ship with sklearn (offline).

They are the default data so that training, tests and demos run with no download at all.
"""

from __future__ import annotations

import numpy as np

from adapt_jax.data import images
from adapt_jax.data.source import Source

NUM_CLASSES = 10
NUM_EXAMPLES = 1797
_MAX_VALUE = 16.0  # sklearn digits are ink counts in 0..16


def digits_uint8() -> tuple[np.ndarray, np.ndarray]:
    """Raw digits as uint8 (1797, 8, 8) in 0..255 (bright ink on black) and int labels."""
    from sklearn.datasets import load_digits  # imported lazily: sklearn is slow to import

    bunch = load_digits()
    raw = np.rint(bunch.images * (255.0 / _MAX_VALUE)).astype(np.uint8)
    return raw, bunch.target.astype(np.int32)


class DigitsSource(Source):
    """All digits upsampled once at construction (1797 * R*R*3 bytes: 5.5 MB at R=32)."""

    def __init__(self, resolution: int, use_labels: bool = True):
        raw, labels = digits_uint8()
        self._images = np.stack([images.fit(x, resolution) for x in raw])
        self._labels = labels if use_labels else np.zeros_like(labels)
        self.num_examples = len(raw)
        self.num_classes = NUM_CLASSES if use_labels else 0
        self.resolution = resolution
        self.description = "digits"

    def _get(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self._images[indices], self._labels[indices]
