"""Deterministic, resumable batches: batch `p` is a pure function of (seed, p).

That is the whole checkpointing story for data: the trainer saves `position` (an int) and a
resumed run rebuilds `BatchIterator(..., position=p)` and sees exactly the same batches.
"""

from __future__ import annotations

import numpy as np

from adapt_jax.data.source import Source

# Distinct RNG streams, so shuffling and flipping never share random numbers.
_SHUFFLE_STREAM, _FLIP_STREAM = 0, 1


def _rng(seed: int, stream: int, counter: int) -> np.random.Generator:
    """Independent generator per (seed, stream, counter); any int seed, negatives included."""
    return np.random.default_rng([int(seed) % 2**64, stream, counter])


class BatchIterator:
    """Epoch-wise shuffled batches (drop_last) with an optional random horizontal flip.

    Epoch `e` is the permutation keyed on (seed, e); batch `p` takes slice `p % steps_per_epoch`
    of epoch `p // steps_per_epoch`; the flip mask is keyed on (seed, p).

    By default every call returns the whole batch. Multi-host runs may instead give every
    process the same `batch_size` (global) and seed plus its `process_index`/`process_count`:
    each then returns its own contiguous `batch_size / process_count` rows of one shared
    permutation, so hosts never draw the same example in a step and the global batch does not
    depend on the host count.
    """

    def __init__(self, source: Source, batch_size: int, seed: int, flip: bool,
                 position: int = 0, *, process_index: int = 0, process_count: int = 1):
        if not 0 <= process_index < process_count:
            raise ValueError(f"process_index={process_index} must be in [0, {process_count})")
        self.process_index, self.process_count = process_index, process_count
        if not 0 < batch_size <= source.num_examples:
            raise ValueError(f"batch_size={batch_size} must be in [1, {source.num_examples}] "
                             f"(the size of {source.description})")
        if batch_size % self.process_count:
            raise ValueError(f"batch_size={batch_size} must divide by the "
                             f"{self.process_count} processes")
        if position < 0:
            raise ValueError(f"position={position} must be >= 0")
        self.source, self.batch_size, self.seed, self.flip = source, batch_size, seed, flip
        self.steps_per_epoch = source.num_examples // batch_size
        self._position = int(position)
        self._perm_epoch, self._perm = -1, np.empty(0, np.int64)

    @property
    def position(self) -> int:
        """Number of batches produced so far (what a checkpoint stores)."""
        return self._position

    @property
    def epoch(self) -> int:
        return self._position // self.steps_per_epoch

    def indices(self, position: int) -> np.ndarray:
        """Dataset indices of global batch `position`."""
        epoch, step = divmod(position, self.steps_per_epoch)
        if epoch != self._perm_epoch:
            self._perm = _rng(self.seed, _SHUFFLE_STREAM, epoch).permutation(
                self.source.num_examples)
            self._perm_epoch = epoch
        return self._perm[step * self.batch_size:(step + 1) * self.batch_size]

    def flips(self, position: int) -> np.ndarray:
        """Bool mask of the rows of global batch `position` that are mirrored."""
        if not self.flip:
            return np.zeros(self.batch_size, bool)
        return _rng(self.seed, _FLIP_STREAM, position).random(self.batch_size) < 0.5

    def next(self) -> tuple[np.ndarray, np.ndarray]:
        """Next batch (this process's rows): float32 (b, R, R, 3) in [-1, 1], int32 (b,)."""
        local = slice(self.process_index * self.batch_size // self.process_count,
                      (self.process_index + 1) * self.batch_size // self.process_count)
        images, labels = self.source.get(self.indices(self._position)[local])
        flips = self.flips(self._position)[local]
        images = np.where(flips[:, None, None, None], images[:, :, ::-1], images)
        self._position += 1
        return images.astype(np.float32) / 127.5 - 1.0, labels

    def __iter__(self) -> BatchIterator:
        return self

    def __next__(self) -> tuple[np.ndarray, np.ndarray]:
        return self.next()
