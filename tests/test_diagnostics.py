"""SparsityDiagnostics on scripted mask sequences with known ITOP / flip rates and layer table."""

import json

import jax.numpy as jnp
import pytest

from adapt_jax.training.diagnostics import SparsityDiagnostics


def masks(bits_a: str, bits_b: str) -> dict:
    """G-like masks tree: two maskable kernels (2x4 and 2x2) and a dense bias (None)."""
    def to_mask(bits, shape):
        return jnp.asarray([c == "1" for c in bits]).reshape(shape)

    return {"a": {"kernel": to_mask(bits_a, (2, 4)), "bias": None},
            "b": {"kernel": to_mask(bits_b, (2, 2))}}


# t: masks after iteration t. 12 maskable weights, 3 active, except the D-style resize at t=20.
SCRIPT = [
    (0, masks("11000000", "1000")),
    (5, masks("01100000", "1000")),   # a: one weight moved -> 2 flips / 3 active
    (10, masks("01100000", "0100")),  # b: one weight moved -> 2 / 3
    (15, masks("11000000", "1000")),  # back to the start: 4 flips, nothing new ever active
    (20, masks("11001100", "1001")),  # grown by 3, nothing dropped: 3 flips / 6 active
]
ITOP = [3 / 12, 4 / 12, 5 / 12, 5 / 12, 8 / 12]
FLIP = [2 / 3, 2 / 3, 4 / 3, 3 / 6]


def scripted() -> tuple[SparsityDiagnostics, list[dict]]:
    """Observe the script; returns the diagnostics and the scalars after each event."""
    diag = SparsityDiagnostics()
    logged = []
    for t, m in SCRIPT:
        diag.observe(t, "g", m, event=True)
        logged.append(diag.scalars())
    return diag, logged


def test_itop_and_flip_rate_on_script():
    diag, logged = scripted()
    assert logged[0] == {"itop_g": pytest.approx(ITOP[0]), "flip_rate_g": 0.0}
    assert [x["itop_g"] for x in logged] == pytest.approx(ITOP)
    assert [x["flip_rate_g"] for x in logged[1:]] == pytest.approx(FLIP)
    s = diag.summary()["g"]
    assert s["itop_rate"] == pytest.approx(8 / 12)
    assert s["events"] == 4
    assert s["flip_rate_last"] == pytest.approx(0.5)
    assert s["flip_rate_mean"] == pytest.approx(sum(FLIP) / 4)
    assert s["density_initial"] == pytest.approx(3 / 12)
    assert s["density_final"] == pytest.approx(6 / 12)
    assert s["layers"]["a/kernel"] == {"size": 8, "initial": 0.25, "final": 0.5,
                                       "ever_active": pytest.approx(5 / 8)}
    assert s["layers"]["b/kernel"] == {"size": 4, "initial": 0.25, "final": 0.5,
                                       "ever_active": 0.75}
    assert diag.scalars() == {"itop_g": pytest.approx(8 / 12), "flip_rate_g": 0.5}


def test_layer_table():
    diag, _ = scripted()
    diag.observe(0, "d", masks("11111111", "0000"), event=True)
    assert diag.layer_table().splitlines() == [
        "| net | layer | weights | initial | final | change | ever active |",
        "|---|---|---:|---:|---:|---:|---:|",
        "| G | a/kernel | 8 | 0.2500 | 0.5000 | +0.2500 | 0.6250 |",
        "| G | b/kernel | 4 | 0.2500 | 0.5000 | +0.2500 | 0.7500 |",
        "| D | a/kernel | 8 | 1.0000 | 1.0000 | +0.0000 | 1.0000 |",
        "| D | b/kernel | 4 | 0.0000 | 0.0000 | +0.0000 | 0.0000 |",
    ]


class Unreadable:
    """A mask leaf that fails when read: stands in for a device array that must stay put."""

    shape, ndim = (2, 4), 2

    def __array__(self, *args, **kwargs):
        raise AssertionError("masks were read between events")


def test_masks_are_read_only_on_events():
    """Between events observe() returns at once: no device-to-host transfer per iteration."""
    diag = SparsityDiagnostics()
    diag.observe(0, "g", SCRIPT[0][1], event=True)
    unreadable = {"a": {"kernel": Unreadable(), "bias": None}}
    for t in range(1, 5):
        diag.observe(t, "g", unreadable, event=False)
    with pytest.raises(AssertionError, match="read between events"):
        diag.observe(5, "g", unreadable, event=True)
    assert diag.summary()["g"]["events"] == 0


def test_state_round_trips_through_json():
    """A resumed run continues the same ITOP / flip bookkeeping."""
    diag, _ = scripted()
    resumed = SparsityDiagnostics()
    resumed.load_dict(json.loads(json.dumps(diag.to_dict())))
    assert resumed.summary() == diag.summary()
    assert resumed.layer_table() == diag.layer_table()
    step = masks("00110011", "0110")  # every entry flips: 12 flips / 6 active
    diag.observe(25, "g", step, event=True)
    resumed.observe(25, "g", step, event=True)
    assert diag.scalars() == resumed.scalars() == {"itop_g": 1.0,
                                                   "flip_rate_g": pytest.approx(12 / 6)}
    assert diag.layer_densities("g") == resumed.layer_densities("g") == {"a/kernel": 0.5,
                                                                         "b/kernel": 0.5}


def test_rejects_unknown_net():
    with pytest.raises(ValueError, match="'g' or 'd'"):
        SparsityDiagnostics().observe(0, "ema", SCRIPT[0][1], event=True)
