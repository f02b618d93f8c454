"""The documented digits example: docs/sparse.md shows its code, its flax TrainState step keeps
the masks exact and the inactive weights at 0, changes masks at the scheduled steps only, compiles
once, and RigL at 10% density still learns digits."""

import inspect
import pathlib
import re

import jax
import numpy as np
import pytest

pytest.importorskip("sklearn")
pytest.importorskip("flax")
from adapt_jax import sparse  # noqa: E402
from examples import digits_classifier  # noqa: E402

DOC = pathlib.Path(__file__).resolve().parents[1] / "docs" / "sparse.md"
STEPS, UPDATE_EVERY = 40, 5  # end_step = 30: mask updates at steps 5, 10, ..., 25


@pytest.mark.parametrize("name", ["create_state", "train_step", "train"])
def test_doc_shows_the_tested_code(name):
    text = DOC.read_text()
    block = re.search(
        rf"<!-- begin digits_classifier.{name} -->\n```python\n(.*?)```\n<!-- end -->", text, re.S
    )
    assert block, f"docs/sparse.md lost the markers of {name}"
    assert block.group(1) == inspect.getsource(getattr(digits_classifier, name))


@pytest.fixture(scope="module")
def run():
    """STEPS steps of the example's train step, with masks and params recorded after each."""
    x_train, y_train, _, _ = digits_classifier.load_digits_split()
    state = digits_classifier.create_state(jax.random.key(0), 0.1, STEPS, UPDATE_EVERY)
    traces = []

    def counted_step(state, x, y):
        traces.append(None)  # runs once per trace, not per call
        return digits_classifier.train_step(state, x, y)

    step = jax.jit(counted_step)
    rng = np.random.default_rng(0)
    history = [jax.device_get((state.params, state.opt_state.masks))]
    for _ in range(STEPS):
        idx = rng.integers(0, len(x_train), 64)
        state = step(state, x_train[idx], y_train[idx])
        history.append(jax.device_get((state.params, state.opt_state.masks)))
    return state, history, traces


def test_masks_change_at_the_scheduled_steps_only(run):
    _, history, _ = run
    changed = [
        t for t in range(1, STEPS + 1)
        if any((a != b).any() for a, b in zip(*(sparse.named_masks(history[s][1]).values()
                                                 for s in (t - 1, t)), strict=True))
    ]
    end_step = STEPS * 3 // 4
    assert changed == list(range(UPDATE_EVERY, end_step, UPDATE_EVERY))


def test_density_exact_and_inactive_weights_zero_after_every_step(run):
    _, history, _ = run
    maskable = sparse.count_maskable(history[0][1])
    for params, masks in history:
        assert sparse.density_stats(masks).active == round(0.1 * maskable)
        zeroed = sparse.tree_map(
            lambda m, p: True if m is None else bool((np.asarray(p)[~m] == 0).all()), masks, params
        )
        assert all(jax.tree.leaves(zeroed))


def test_one_compile_and_the_step_count_in_the_state(run):
    state, _, traces = run
    assert len(traces) == 1
    assert int(state.opt_state.count) == int(state.step) == STEPS


def test_rigl_at_ten_percent_learns_digits():
    result = digits_classifier.train(density=0.1)
    assert result["stats"].active == round(0.1 * result["stats"].maskable)
    assert result["accuracy"] >= 0.95, result["accuracy"]  # dense: about 0.99
