"""Deterministic, resumable batches: batch `p` is a pure function of (seed, p).

That is the whole checkpointing story for data: the trainer saves `position` (an int) and a
resumed run rebuilds `BatchIterator(..., position=p)` and sees exactly the same batches.

Batches are prepared ahead of use by a background thread (`prefetch` of them), so image
decoding and resizing overlap the device's work instead of stalling it. Prefetching changes
neither the batches nor `position`, which counts the batches handed out, not those prepared.
"""

from __future__ import annotations

import copy
import queue
import threading

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
                 position: int = 0, *, process_index: int = 0, process_count: int = 1,
                 prefetch: int = 2):
        self._ahead: _Prefetcher | None = None  # first: __del__ runs even if __init__ raises
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
        if prefetch < 0:
            raise ValueError(f"prefetch={prefetch} must be >= 0 (0 = no background thread)")
        self.prefetch = prefetch
        self._position = int(position)
        self._perm_epoch, self._perm = -1, np.empty(0, np.int64)

    @property
    def position(self) -> int:
        """Number of batches handed out so far (what a checkpoint stores)."""
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

    def batch(self, position: int) -> tuple[np.ndarray, np.ndarray]:
        """Batch `position` (this process's rows): float32 (b, R, R, 3) in [-1, 1], int32 (b,)."""
        local = slice(self.process_index * self.batch_size // self.process_count,
                      (self.process_index + 1) * self.batch_size // self.process_count)
        images, labels = self.source.get(self.indices(position)[local])
        flips = self.flips(position)[local]
        images = np.where(flips[:, None, None, None], images[:, :, ::-1], images)
        return images.astype(np.float32) / 127.5 - 1.0, labels

    def next(self) -> tuple[np.ndarray, np.ndarray]:
        """The batch at `position`, then advance."""
        if not self.prefetch:
            out = self.batch(self._position)
        else:
            if self._ahead is None:
                # The thread gets its own copy: the permutation cache is not shared.
                producer = copy.copy(self)
                producer.prefetch, producer._ahead = 0, None
                self._ahead = _Prefetcher(producer.batch, self._position, self.prefetch)
            try:
                out = self._ahead.get(self._position)
            except Exception:
                self.close()  # the thread has ended; a retry starts a new one here
                raise
        self._position += 1
        return out

    def close(self) -> None:
        """Stop the background thread (also done when the iterator is garbage-collected)."""
        if self._ahead is not None:
            self._ahead.stop()
            self._ahead = None

    def __del__(self) -> None:
        self.close()

    def __iter__(self) -> BatchIterator:
        return self

    def __next__(self) -> tuple[np.ndarray, np.ndarray]:
        return self.next()


class _Prefetcher:
    """A daemon thread computing `produce(p)` for p = start, start + 1, ... into a bounded
    queue. It holds no reference to the iterator, so dropping the iterator stops it."""

    def __init__(self, produce, start: int, depth: int):
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._work, args=(produce, start), daemon=True,
                                        name="batch-prefetch")
        self._thread.start()

    def _work(self, produce, position: int) -> None:
        while not self._stop.is_set():
            try:
                item = (position, produce(position), None)
            except Exception as e:  # re-raised in the consumer, at this batch
                item = (position, None, e)
            while not self._stop.is_set():
                try:
                    self._queue.put(item, timeout=0.1)
                    break
                except queue.Full:
                    continue
            if item[2] is not None:
                return
            position += 1

    def get(self, position: int) -> tuple[np.ndarray, np.ndarray]:
        got, out, error = self._queue.get()
        if error is not None:
            raise error
        assert got == position, (got, position)
        return out

    def stop(self) -> None:
        self._stop.set()
