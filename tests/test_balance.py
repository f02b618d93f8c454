"""Controller and window semantics on scripted measurements (docs/design.md §4-5)."""

import json
import math

import pytest

from adapt_jax.gan.balance import BalanceWindow, DensityController, Measurement, load_reference_band


def m(t, br, real=1.0, fake_pre=0.0, sign=0.5):
    """A measurement whose ratio is exactly `br` (beta = real - fake_pre)."""
    beta = real - fake_pre
    return Measurement(t, fake_pre + br * beta, fake_pre, real, sign)


def controller(mode="relax", count=100, d_max=1.0, lower=0.45, upper=0.55, window=100,
               every=10, criterion="br", maskable=1000):
    w = BalanceWindow(window, every, criterion)
    return DensityController(mode=mode, maskable=maskable, initial_count=count, d_min=0.05,
                             d_max=d_max, delta_d=0.05, lower=lower, upper=upper, window=w)


def fill(c, t_end, br, every=10):
    for t in range(every, t_end + 1, every):
        c.window.add(m(t, br))


def test_window_keeps_last_window_iterations_and_is_not_reset():
    w = BalanceWindow(100, 10)
    for t in range(10, 301, 10):
        w.add(m(t, t / 1000))
    assert [x.t for x in w.items] == list(range(210, 301, 10))
    assert w.full()
    assert math.isclose(w.value(), sum(t / 1000 for t in range(210, 301, 10)) / 10)


def test_mean_of_ratios_differs_from_ratio_of_means():
    a = Measurement(1, 1.0, 0.0, 1.0, 0.0)  # ratio 1, beta 1
    b = Measurement(2, 1.0, 0.0, 4.0, 0.0)  # ratio 0.25, beta 4
    w1, w2 = BalanceWindow(10, 1), BalanceWindow(10, 1, reduce="ratio_of_means")
    for x in (a, b):
        w1.add(x)
        w2.add(x)
    assert math.isclose(w1.value(), 0.625)
    assert math.isclose(w2.value(), 2.0 / 5.0)


def test_tiny_beta_is_skipped_and_counted_never_nan():
    w = BalanceWindow(100, 10)
    w.add(Measurement(10, 0.3, 0.2, 0.2 + 1e-9, 0.0))
    assert w.skipped == 1 and not w.items
    w.add(m(20, 0.5))
    assert w.value() == 0.5


def test_skipped_measurement_does_not_delay_a_full_window():
    """Fullness is time covered: one |beta|-guarded measurement leaves 9 of 10 entries, and the
    controller still decides at the end of the window instead of waiting a whole window more."""
    c = controller()
    for t in range(10, 101, 10):
        c.window.add(Measurement(t, 0.3, 0.2, 0.2 + 1e-9, 0.0) if t == 40 else m(t, 0.9))
    assert len(c.window.items) == 9 and c.window.skipped == 1
    assert c.decide(100).action == "increase"
    only_skipped = BalanceWindow(100, 10)
    for t in range(10, 101, 10):
        only_skipped.add(Measurement(t, 0.3, 0.2, 0.2 + 1e-9, 0.0))
    assert not only_skipped.full()  # nothing to decide on
    restored = BalanceWindow(100, 10)
    restored.load_dict(json.loads(json.dumps(c.window.to_dict())))
    assert restored.full() and restored.last_t == 100


def test_waits_until_window_full():
    c = controller()
    fill(c, 50, 0.9)
    d = c.decide(50)
    assert d.action == "wait" and c.count == 100


def test_increase_decrease_and_clamps():
    c = controller(count=100)
    fill(c, 100, 0.9)  # BR > B+: D too weak
    assert c.decide(100).action == "increase" and c.count == 150
    c2 = controller(count=100)
    fill(c2, 100, 0.1)  # BR < B-: D too strong
    assert c2.decide(100).action == "decrease" and c2.count == 50
    assert c2.decide(200).action == "none" and c2.count == 50  # floor d_min = 0.05
    c3 = controller(count=980)
    fill(c3, 100, 0.9)
    assert c3.decide(100).new_count == 1000  # clamped to d_max exactly
    assert c3.decide(200).action == "none"  # relax at d_max: nothing


def test_inside_band_does_nothing():
    c = controller()
    fill(c, 100, 0.5)
    assert c.decide(100).action == "none" and c.count == 100


def test_strict_dst_only_at_d_max_and_integer_steps_hit_it_exactly():
    c = controller(mode="strict", count=300, d_max=0.5)
    fill(c, 100, 0.9)
    actions = [c.decide(100 * k).action for k in range(1, 7)]
    assert actions == ["increase"] * 4 + ["dst", "dst"]
    assert c.count == 500


def test_ada_rt_is_read_inverted():
    c = controller(criterion="ada_rt", lower=0.5, upper=0.7)
    for t in range(10, 101, 10):
        c.window.add(Measurement(t, 0.0, 0.0, 1.0, 0.9))  # r_t high: D overfits → sparser
    assert c.decide(100).action == "decrease"


def test_state_round_trips_through_json():
    c = controller()
    fill(c, 100, 0.9)
    c.decide(100)
    blob = json.loads(json.dumps(c.to_dict()))
    c2 = controller()
    c2.load_dict(blob)
    c2.window.load_dict(json.loads(json.dumps(c.window.to_dict())))  # saved by its owner
    assert "window" not in blob  # the host state saves the window once
    assert c2.count == c.count and c2.decisions == c.decisions
    assert list(c2.window.items) == list(c.window.items)
    fill(c, 200, 0.2)
    fill(c2, 200, 0.2)
    assert c.decide(200) == c2.decide(200)


def test_bad_criterion_named():
    with pytest.raises(ValueError, match="balance.criterion"):
        BalanceWindow(100, 10, criterion="fid")


def test_calibrated_band_is_centred_on_the_warmup_later_half():
    """The first decision of a calibrating controller sets the band from the measurements of
    the warm-up's later half (the early transient does not count), empties the window and
    moves D from d_max to its initial count; the band survives a JSON round trip."""
    w = BalanceWindow(100, 10)
    c = DensityController(mode="relax", maskable=1000, initial_count=200, d_min=0.05,
                          d_max=1.0, delta_d=0.05, lower=0.45, upper=0.55, window=w,
                          calibration_width=0.25)
    assert c.calibrating
    for t in range(10, 101, 10):
        c.window.add(m(t, 5.0 if t <= 50 else 0.2))  # transient, then BR 0.2
    d = c.decide(100)
    assert (d.action, d.old_count, d.new_count) == ("calibrate", 1000, 200)
    assert d.value == pytest.approx(0.2)
    assert (c.lower, c.upper) == (pytest.approx(0.15), pytest.approx(0.25))
    assert c.calibration.measurements == 5 and c.calibration.from_t == 51
    assert not c.window.items and not c.calibrating
    fill(c, 200, 0.1)
    assert c.decide(200).action == "decrease"  # below the calibrated band: D too strong
    resumed = DensityController(mode="relax", maskable=1000, initial_count=200, d_min=0.05,
                                d_max=1.0, delta_d=0.05, lower=0.45, upper=0.55,
                                window=BalanceWindow(100, 10), calibration_width=0.25)
    resumed.load_dict(json.loads(json.dumps(c.to_dict())))
    assert resumed.band() == c.band() and resumed.count == c.count
    assert resumed.band()["mode"] == "calibrated" and not resumed.calibrating


def test_calibration_without_measurements_names_the_fix():
    c = DensityController(mode="relax", maskable=1000, initial_count=200, d_min=0.05,
                          d_max=1.0, delta_d=0.05, lower=0.45, upper=0.55,
                          window=BalanceWindow(100, 10), calibration_width=0.25)
    with pytest.raises(ValueError, match="d_adjust_every"):
        c.decide(100)


def test_reference_band_follows_the_reference_runs_br_through_training(tmp_path):
    """band='reference': at each check t the band is the reference's newest windowed BR at or
    before t, ± width x that value; each decision records the band it was judged by; the
    reference travels with the controller's state (a resume never re-reads the file)."""
    br = [[t, 0.01 * t] for t in range(10, 101, 10)] + [[110, float("nan")]]
    (tmp_path / "summary.json").write_text(json.dumps({"iterations": 110, "history": {"br": br}}))
    ref = load_reference_band(str(tmp_path), 0.25)
    assert len(ref.trajectory) == 10  # the NaN window does not count
    assert ref.band_at(55) == (pytest.approx(0.375), pytest.approx(0.625))  # around 0.5 (t=50)
    assert ref.band_at(5) == ref.band_at(10)  # before its first value: its first value
    assert ref.band_at(500) == ref.band_at(100)  # after its end: its last value
    c = DensityController(mode="relax", maskable=1000, initial_count=200, d_min=0.05,
                          d_max=1.0, delta_d=0.05, lower=0.45, upper=0.55,
                          window=BalanceWindow(30, 10), reference=ref)
    fill(c, 30, 0.5)
    d = c.decide(30)  # band around 0.3: BR 0.5 is above it, D too weak
    assert (d.action, d.lower, d.upper) == ("increase", pytest.approx(0.225),
                                            pytest.approx(0.375))
    fill(c, 100, 0.5)
    d = c.decide(100)  # band around 1.0: BR 0.5 below it, D too strong
    assert (d.action, d.lower, d.upper) == ("decrease", pytest.approx(0.75), pytest.approx(1.25))
    assert c.band() == {"mode": "reference", "source": str(tmp_path / "summary.json"),
                        "width": 0.25, "offset": 0.0, "lower": d.lower, "upper": d.upper}
    resumed = controller(count=200)
    resumed.load_dict(json.loads(json.dumps(c.to_dict())))
    assert resumed.reference == ref and resumed.decisions == c.decisions
    assert resumed.band() == c.band()


def test_reference_offset_shifts_the_band_and_survives_a_resume(tmp_path):
    """offset o: the band is c(t)·(1 + o) ± width·c(t), so with o = width its lower edge is the
    reference itself: a sparse D that balances like the dense one loses density."""
    br = [[t, 0.2] for t in range(10, 101, 10)]
    (tmp_path / "summary.json").write_text(json.dumps({"iterations": 100, "history": {"br": br}}))
    ref = load_reference_band(str(tmp_path), 0.2, offset=0.2)
    assert ref.band_at(50) == (pytest.approx(0.2), pytest.approx(0.28))
    c = DensityController(mode="relax", maskable=1000, initial_count=400, d_min=0.05,
                          d_max=1.0, delta_d=0.05, lower=0.45, upper=0.55,
                          window=BalanceWindow(30, 10), reference=ref)
    fill(c, 30, 0.19)  # just below the dense D's BR: this D has density to spare
    assert (c.decide(30).action, c.count) == ("decrease", 350)
    fill(c, 60, 0.21)  # inside [c, 1.4c]: unchanged, though a centred band would call it weak
    assert (c.decide(60).action, c.count) == ("none", 350)
    resumed = controller(count=350)
    resumed.load_dict(json.loads(json.dumps(c.to_dict())))
    assert resumed.reference.offset == 0.2 and resumed.band() == c.band()


def test_reference_without_measurements_is_refused(tmp_path):
    (tmp_path / "summary.json").write_text(json.dumps(
        {"iterations": 100, "history": {"br": [[5, 0.1], [10, float("nan")]]}}))
    with pytest.raises(ValueError, match="needs balance measurements"):
        load_reference_band(str(tmp_path), 0.25)
