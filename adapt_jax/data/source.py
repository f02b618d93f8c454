"""The random-access dataset interface that `BatchIterator` and the trainer rely on."""

from __future__ import annotations

import abc

import numpy as np


class Source(abc.ABC):
    """A fixed-size, randomly indexable set of square RGB images (and class labels).

    Random access (rather than a stream) is what makes batches a pure function of
    (seed, position), so a resumed run sees exactly the batches it would have seen.
    Unlabelled sources have `num_classes == 0` and return all-zero labels.
    """

    num_examples: int
    num_classes: int
    resolution: int
    description: str  # short human-readable origin, for logs and error messages

    def get(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Examples at `indices` -> (uint8 (n, R, R, 3), int32 (n,))."""
        indices = np.asarray(indices)
        if indices.ndim != 1 or not np.issubdtype(indices.dtype, np.integer):
            raise ValueError(f"indices must be a 1-D integer array, got {indices.dtype} "
                             f"with shape {indices.shape}")
        if indices.size and (indices.min() < 0 or indices.max() >= self.num_examples):
            raise IndexError(f"indices must lie in [0, {self.num_examples}) for "
                             f"{self.description}, got [{indices.min()}, {indices.max()}]")
        if not indices.size:
            r = self.resolution
            return np.zeros((0, r, r, 3), np.uint8), np.zeros((0,), np.int32)
        images, labels = self._get(indices)
        return images.astype(np.uint8, copy=False), labels.astype(np.int32, copy=False)

    @abc.abstractmethod
    def _get(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Fetch already-validated indices."""

    def __len__(self) -> int:
        return self.num_examples

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.description}, n={self.num_examples}, "
                f"classes={self.num_classes}, R={self.resolution})")
