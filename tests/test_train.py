"""End-to-end trainer behaviour on a tiny config, for every method (docs/design.md §2-7)."""

import json
import os

import jax
import numpy as np
import pytest
from conftest import tiny_config

from adapt_jax import sparse, training
from adapt_jax.gan import methods
from adapt_jax.gan.state import EVAL_STREAM, stream_key
from adapt_jax.training import outputs


def _zero_where_off(params, masks) -> bool:
    ok = jax.tree.map(
        lambda m, p: True if m is None else bool(np.all(np.asarray(p)[~np.asarray(m)] == 0)),
        masks, params, is_leaf=lambda x: x is None)
    return all(jax.tree.leaves(ok))


def _tensorboard_tags(workdir) -> dict[str, list[int]]:
    """{tag: [steps]} of the scalars clu wrote to TensorBoard in `workdir`."""
    from tensorboard.backend.event_processing import event_accumulator

    acc = event_accumulator.EventAccumulator(str(workdir), size_guidance={"tensors": 0})
    acc.Reload()
    return {tag: [e.step for e in acc.Tensors(tag)] for tag in acc.Tags()["tensors"]}


def _count(masks) -> int:
    return int(sparse.count_active(masks))


@pytest.mark.parametrize("method", sorted(methods.METHODS))
def test_invariants_every_iteration(method, tmp_path):
    """Masks respected after every step, exact G counts, D changes only at events, exact EMA
    sparsity, and no compilation after the first use of each step."""
    c = tiny_config(method)
    tr = training.Trainer(c, str(tmp_path))
    spec = methods.get_method(method)
    sched = tr.components.schedule
    g0, d_prev = _count(tr.state.g.masks), _count(tr.state.d.masks)
    d_lo = round(c.sparse.d_min * tr.maskable("d"))
    d_hi = round(c.sparse.d_max * tr.maskable("d"))
    while tr.t < sched.total:
        tr.iteration()
        t, s = tr.t, tr.state
        assert _zero_where_off(s.g.params, s.g.masks), f"G not masked at t={t}"
        assert _zero_where_off(s.d.params, s.d.masks), f"D not masked at t={t}"
        assert _zero_where_off(s.ema_params, s.g.masks), f"EMA not sparse at t={t}"
        if not spec.posthoc or t < sched.prune_at:
            assert _count(s.g.masks) == g0, f"G active count moved at t={t}"
        d_now = _count(s.d.masks)
        if not sched.d_event(t):
            assert d_now == d_prev, f"D density changed off-schedule at t={t}"
        if spec.d_mode == "controlled":
            assert d_lo <= d_now <= d_hi
        d_prev = d_now
    if spec.posthoc:
        assert _count(tr.state.g.masks) == round(c.sparse.density_g * tr.maskable("g"))
    for name, fn in tr.components.steps._asdict().items():
        assert fn._cache_size() <= 1, f"{name} compiled {fn._cache_size()} times"


def test_adapt_changes_d_density_and_g_masks(tmp_path):
    """With a band no BR can satisfy, the controller must act at every adjust iteration."""
    c = tiny_config("adapt_relax", **{"balance.lower": 50.0, "balance.upper": 60.0})
    tr = training.Trainer(c, str(tmp_path))
    d0 = _count(tr.state.d.masks)
    g_masks0 = jax.device_get(tr.state.g.masks)
    while tr.t < tr.components.schedule.total:
        tr.iteration()
    actions = [d.action for d in tr.host.controller.decisions]
    assert actions and all(a == "decrease" for a in actions if a != "wait")
    assert "decrease" in actions
    assert _count(tr.state.d.masks) < d0
    changed = jax.tree.map(lambda a, b: bool(np.any(a != np.asarray(b))), g_masks0,
                           tr.state.g.masks, is_leaf=lambda x: x is None)
    assert any(v for v in jax.tree.leaves(changed) if v is not None), "G masks never changed"


def test_layer_scope_moves_g_masks_but_keeps_each_layers_density(tmp_path):
    """sparse.g_scope='layer': drop/grow happens within each G layer (global ranking lets the
    layers' densities drift, e.g. starving G's first linear layer)."""
    tr = training.Trainer(tiny_config("sdst_rigl", **{"sparse.g_scope": "layer"}), str(tmp_path))
    per_leaf = lambda masks: [int(np.sum(m)) for m in jax.tree.leaves(jax.device_get(masks))]  # noqa: E731
    counts0, masks0 = per_leaf(tr.state.g.masks), jax.device_get(tr.state.g.masks)
    while tr.t < tr.components.schedule.total:
        tr.iteration()
    assert per_leaf(tr.state.g.masks) == counts0
    moved = [bool(np.any(a != np.asarray(b))) for a, b in
             zip(jax.tree.leaves(masks0), jax.tree.leaves(tr.state.g.masks), strict=True)]
    assert sum(moved) >= 2, "layer-scope drop/grow never changed G's masks"


def test_strict_grows_d_to_d_max_then_runs_dst_there(tmp_path):
    """ADAPT_strict with a band BR always exceeds: D grows by delta_d to d_max, then every
    further check is one DST step at exactly d_max (masks move, the count does not)."""
    c = tiny_config("adapt_strict", **{"balance.lower": -60.0, "balance.upper": -50.0,
                                       "sparse.density_d": 0.45})
    tr = training.Trainer(c, str(tmp_path))
    at_max = round(c.sparse.d_max * tr.maskable("d"))
    masks_at = {}
    while tr.t < tr.components.schedule.total:
        tr.iteration()
        if tr.components.schedule.d_event(tr.t):
            masks_at[tr.t] = jax.device_get(tr.state.d.masks)
    actions = [(d.t, d.action, d.new_count) for d in tr.host.controller.decisions]
    assert actions == [(10, "increase", at_max), (20, "dst", at_max), (30, "dst", at_max)]
    assert _count(tr.state.d.masks) == at_max
    changed = jax.tree.map(lambda a, b: bool(np.any(a != b)), masks_at[20], masks_at[30],
                           is_leaf=lambda x: x is None)
    assert any(v for v in jax.tree.leaves(changed) if v is not None), "D DST moved no mask"


def test_run_writes_outputs_and_resume_is_exact(tmp_path):
    """run() leaves checkpoints, events, samples, balance plot and summary; 2N iterations in one
    run equal N + resume + N, parameter for parameter."""
    full = tmp_path / "full"
    c = tiny_config("adapt_relax", **{"balance.band": "calibrated"})
    summary = training.run(c, str(full))
    for name in ("samples.png", "balance.png", "summary.json", "config.json",
                 "layer_density.md"):
        assert (full / name).exists(), name
    assert any(f.startswith("events.out.tfevents") for f in os.listdir(full))
    g = summary["sparsity"]["g"]
    # G DST moved masks at every event, so more weights were ever active than are active now.
    assert g["events"] == 40 // c.sparse.g_update_every - 1
    assert g["itop_rate"] > g["density_final"] == pytest.approx(c.sparse.density_g, abs=1e-3)
    tags = _tensorboard_tags(full)
    for tag in ("g_loss", "br_avg", "density_d", "iterations_per_sec", "eval/cfd",
                "eval/best_cfd", "eval/best_iteration", "controller/action",
                "controller/d_density", "mask_events/flip_rate_g", "mask_events/itop_d"):
        assert tag in tags, tag
    fresh = training.Trainer(c, str(tmp_path / "fresh"))
    n_layers = sum(len(sparse.density_stats(m).layers)
                   for m in (fresh.state.g.masks, fresh.state.d.masks))
    assert len([t for t in tags if t.startswith("layer_density/")]) == n_layers
    # One point per controller decision and per G mask event, each at its own iteration.
    assert tags["controller/action"] == [d["t"] for d in summary["d_decisions"]]
    assert tags["mask_events/flip_rate_g"] == [t for t, _ in g["flip_history"]]
    assert len(g["flip_history"]) == g["events"]
    assert json.loads((full / "summary.json").read_text())["iterations"] == 40
    band, first = summary["band"], summary["d_decisions"][0]
    assert band["mode"] == "calibrated" and band["t"] == first["t"] == c.sparse.d_adjust_every
    assert first["action"] == "calibrate" and first["value"] == band["centre"]
    assert band["lower"] < band["centre"] < band["upper"]
    assert tags["controller/band_lower"] == [d["t"] for d in summary["d_decisions"]]
    assert summary["flops_normalized"]["total"] < 1.0

    split = tmp_path / "split"
    assert training.run(c, str(split), stop_after=20) is None
    training.run(c, str(split))
    split_tags = _tensorboard_tags(split)  # the resumed run logs each event once
    for tag in ("controller/action", "mask_events/flip_rate_g", "mask_events/flip_rate_d"):
        assert split_tags[tag] == tags[tag], tag
    a = training.Trainer(c, str(full))
    b = training.Trainer(c, str(split))
    from adapt_jax.training.checkpoint import Checkpointer

    sa = Checkpointer(str(full / "checkpoints")).restore_latest(a.state)
    sb = Checkpointer(str(split / "checkpoints")).restore_latest(b.state)
    assert sa[0] == sb[0] == 40
    same = jax.tree.map(lambda x, y: bool(np.array_equal(np.asarray(x), np.asarray(y))),
                        sa[1], sb[1], is_leaf=lambda x: x is None)
    assert all(v for v in jax.tree.leaves(same) if v is not None)
    assert sa[2]["controller"] == sb[2]["controller"]
    assert sa[2]["diagnostics"] == sb[2]["diagnostics"]


def test_calibrated_band_warms_up_at_d_max_then_starts_d_at_its_density(tmp_path):
    """band='calibrated': D runs at d_max until the first D check, which sets the band from the
    warm-up's BR and moves D to its initial density; later checks use that band."""
    c = tiny_config("adapt_relax", **{"balance.band": "calibrated", "sparse.d_max": 0.8})
    tr = training.Trainer(c, str(tmp_path))
    n, every = tr.maskable("d"), c.sparse.d_adjust_every
    assert _count(tr.state.d.masks) == round(0.8 * n)
    while tr.t < every - 1:
        tr.iteration()
    assert _count(tr.state.d.masks) == round(0.8 * n)
    tr.iteration()
    assert _count(tr.state.d.masks) == round(c.sparse.density_d * n)
    ctrl = tr.host.controller
    cal = ctrl.calibration
    assert cal is not None and cal.t == every and (ctrl.lower, ctrl.upper) == (cal.lower,
                                                                              cal.upper)
    assert not ctrl.window.items  # the next decision reads only sparse-D measurements
    assert [d.action for d in ctrl.decisions] == ["calibrate"]
    assert tr.host.diagnostics.density("d") == pytest.approx(c.sparse.density_d, abs=1e-3)


def test_reference_band_is_read_from_another_runs_summary(tmp_path):
    """band='reference': D starts at its own initial density (no warm-up), every check is
    judged by the reference run's BR at that iteration, and summary.json says where the band
    came from."""
    ref_dir = tmp_path / "reference"
    ref_dir.mkdir()
    br = [[t, 0.1 + 0.01 * t] for t in range(2, 41, 2)]
    (ref_dir / "summary.json").write_text(json.dumps({"iterations": 40, "history": {"br": br}}))
    c = tiny_config("adapt_relax", **{"balance.band": "reference",
                                      "balance.reference": str(ref_dir)})
    tr = training.Trainer(c, str(tmp_path / "run"))
    assert _count(tr.state.d.masks) == round(c.sparse.density_d * tr.maskable("d"))
    while tr.t < 2 * c.sparse.d_adjust_every:
        tr.iteration()
    checks = tr.host.controller.decisions
    assert [d.t for d in checks] == [10, 20]
    for d in checks:
        centre = dict(br)[d.t]
        assert (d.lower, d.upper) == (pytest.approx(0.75 * centre), pytest.approx(1.25 * centre))
    band = outputs.band_summary(tr)
    assert band["mode"] == "reference" and band["used"] and band["source"].endswith(".json")


def test_evaluation_scores_fresh_samples_in_every_batch(tmp_path):
    """The evaluator asks for its samples batch by batch: each batch must be new images, or a
    score over N samples silently measures only the first batch (repeated)."""
    c = tiny_config("static")
    tr = training.Trainer(c, str(tmp_path))

    class Recorder:
        name = "cfd"
        description = "recording evaluator"
        batches: list[np.ndarray] = []

        def evaluate(self, generate):
            # The last batch is smaller than eval.batch_size: sampling fills the rest.
            self.batches, self.labels = zip(*(generate(n) for n in (16, 16, 16, 8)), strict=True)
            return {"cfd": 1.0}

    rec = Recorder()
    scores, improved = outputs.evaluate(tr, rec, t=0)
    assert scores == {"cfd": 1.0} and improved
    # The labels handed to the evaluator (for class accuracy) are the ones the batch key would
    # draw by itself: the same images as sampling without labels.
    for i, n in ((0, 16), (3, 8)):
        key = jax.random.fold_in(stream_key(c.seed, EVAL_STREAM, 0), i)
        np.testing.assert_array_equal(rec.batches[i], tr.sample(key, n))
    assert len(set(np.concatenate(rec.labels).tolist())) > 1
    first, *rest = rec.batches
    for other in rest:
        assert not np.array_equal(first, other)
    again = Recorder()
    outputs.evaluate(tr, again, t=0)
    for a, b in zip(rec.batches, again.batches, strict=True):  # still deterministic per t
        np.testing.assert_array_equal(a, b)


def test_spectral_norm_state_of_d_moves_only_in_d_steps(tmp_path):
    """D's power-iteration vectors advance in D steps, never in the G step or the
    BR forwards (measuring must not change training); G's own SN/BN state does move there."""
    c = tiny_config("adapt_relax")
    tr = training.Trainer(c, str(tmp_path))
    assert "spectral_stats" in tr.state.d.stats
    reals, labels = tr.next_batch()

    def host(tree):
        return jax.tree.map(np.asarray, jax.device_get(tree))

    d_before, g_before = host(tr.state.d.stats), host(tr.state.g.stats)
    tr.state, _ = tr.components.steps.g_step(tr.state, reals, labels, jax.numpy.int32(1),
                                     jax.numpy.bool_(True), jax.numpy.bool_(False),
                                     jax.numpy.float32(0.0))
    d_after_g, g_after_g = host(tr.state.d.stats), host(tr.state.g.stats)
    for a, b in zip(jax.tree.leaves(d_before), jax.tree.leaves(d_after_g), strict=True):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in
               zip(jax.tree.leaves(g_before), jax.tree.leaves(g_after_g), strict=True))
    tr.state, _ = tr.components.steps.d_step(tr.state, reals, labels, jax.numpy.int32(0))
    d_after_d = host(tr.state.d.stats["spectral_stats"])
    assert any(not np.array_equal(a, b) for a, b in
               zip(jax.tree.leaves(d_before["spectral_stats"]), jax.tree.leaves(d_after_d),
                   strict=True))


def test_stop_in_last_iteration_then_resume_finishes_the_run(tmp_path, monkeypatch, caplog):
    """A stop in the last iteration checkpoints before the final evaluation; the resumed run
    (which has no iteration left) still evaluates, plots and writes the summary. A failing
    evaluation is logged and never costs the checkpoint."""
    c = tiny_config("static", **{"train.num_iters": 10, "train.ckpt_every": 10})
    assert training.run(c, str(tmp_path), stop_after=10) is None
    assert not (tmp_path / "summary.json").exists()
    summary = training.run(c, str(tmp_path))
    assert [t for t, _ in summary["eval"]["history"]] == [10]
    assert (tmp_path / "samples.png").exists() and (tmp_path / "summary.json").exists()

    def broken(*args, **kwargs):
        raise RuntimeError("evaluator exploded")

    monkeypatch.setattr(outputs, "evaluate", broken)
    other = tmp_path / "broken_eval"
    summary = training.run(c, str(other))
    assert summary["eval"]["history"] == [] and summary["iterations"] == 10
    assert os.listdir(other / "checkpoints") == ["10"]
    assert "Evaluation at iteration 10 failed (RuntimeError: evaluator exploded)" in caplog.text


def test_an_extended_run_keeps_the_final_evaluation_of_its_first_part(tmp_path):
    """The last checkpoint is written after the final evaluation: a run extended to more
    iterations resumes from it and still lists that evaluation (eval.every does not hit it)."""
    c = tiny_config("static", **{"train.num_iters": 12, "train.ckpt_every": 10,
                                 "eval.every": 10, "eval.num_samples": 20})
    training.run(c, str(tmp_path))
    c.train.num_iters = 14
    summary = training.run(c, str(tmp_path))
    assert [t for t, _ in summary["eval"]["history"]] == [10, 12, 14]
