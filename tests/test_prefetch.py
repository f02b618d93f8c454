"""Batches prepared ahead by a background thread: same batches, same position, same errors."""

import time

import numpy as np
import pytest

from adapt_jax import data
from adapt_jax.config_base import get_base_config


class Recording(data.Source):
    """Digits at 8x8 that record which index arrays were fetched (and can fail on demand)."""

    def __init__(self, fail_at_call: int | None = None):
        cfg = get_base_config().data
        self.inner = data.make_source(cfg, resolution=8, num_classes=10)
        self.num_examples, self.num_classes = self.inner.num_examples, 10
        self.resolution, self.description = 8, "recorded digits"
        self.calls: list[np.ndarray] = []
        self.fail_at_call = fail_at_call

    def _get(self, indices):
        self.calls.append(indices)
        if len(self.calls) == self.fail_at_call:
            raise OSError("corrupt image")
        return self.inner.get(indices)


def take(it, n):
    return [it.next() for _ in range(n)]


def test_prefetched_batches_equal_plain_ones_and_resume_alike():
    source = Recording()
    plain = take(data.BatchIterator(source, 64, seed=3, flip=True, prefetch=0), 60)
    ahead = data.BatchIterator(source, 64, seed=3, flip=True)  # prefetch=2 by default
    assert ahead.prefetch == 2
    got = take(ahead, 30)
    resumed = take(data.BatchIterator(source, 64, seed=3, flip=True, position=30), 30)
    for (xa, ya), (xb, yb) in zip(plain, got + resumed, strict=True):  # across an epoch end
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)


def test_position_counts_batches_handed_out_not_prepared():
    source = Recording()
    it = data.BatchIterator(source, 16, seed=0, flip=False, position=5)
    it.next()
    deadline = time.time() + 60
    while len(source.calls) < 3:  # the thread works ahead of the consumer...
        assert time.time() < deadline, "no batch was prepared ahead"
        time.sleep(0.01)
    assert it.position == 6  # ...but a checkpoint resumes after the last batch used
    np.testing.assert_array_equal(source.calls[1], it.indices(6))
    assert len(source.calls) <= 1 + 2 + 1  # used, `prefetch` queued, one waiting for room
    it.close()


def test_a_failing_batch_raises_in_the_consumer_at_that_batch():
    it = data.BatchIterator(Recording(fail_at_call=3), 16, seed=0, flip=False)
    take(it, 2)
    with pytest.raises(OSError, match="corrupt image"):
        it.next()
    assert it.position == 2


def test_dropping_the_iterator_ends_its_thread():
    it = data.BatchIterator(Recording(), 16, seed=0, flip=False)
    it.next()
    thread = it._ahead._thread
    del it
    thread.join(timeout=30)
    assert not thread.is_alive()
