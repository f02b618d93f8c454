"""End-to-end trainer behaviour on a tiny config, for every method (SPEC §2-6)."""

import json
import os

import jax
import numpy as np
import pytest
from conftest import tiny_config

from adapt_jax import methods, sparse, train


def _zero_where_off(params, masks) -> bool:
    ok = jax.tree.map(
        lambda m, p: True if m is None else bool(np.all(np.asarray(p)[~np.asarray(m)] == 0)),
        masks, params, is_leaf=lambda x: x is None)
    return all(jax.tree.leaves(ok))


def _count(masks) -> int:
    return int(sparse.count_active(masks))


@pytest.mark.parametrize("method", sorted(methods.METHODS))
def test_invariants_every_iteration(method, tmp_path):
    """Masks respected after every step, exact G counts, D changes only at events, exact EMA
    sparsity, and no compilation after the first use of each step."""
    c = tiny_config(method)
    tr = train.Trainer(c, str(tmp_path))
    spec = methods.get_method(method)
    sched = tr.schedule
    g0, d_prev = _count(tr.state.g.masks), _count(tr.state.d.masks)
    d_lo = round(c.sparse.d_min * tr.d_maskable)
    d_hi = round(c.sparse.d_max * tr.d_maskable)
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
        assert _count(tr.state.g.masks) == round(c.sparse.density_g * tr.g_maskable)
    for name, fn in tr.steps.items():
        assert fn._cache_size() <= 1, f"{name} compiled {fn._cache_size()} times"


def test_adapt_changes_d_density_and_g_masks(tmp_path):
    """With a band no BR can satisfy, the controller must act at every adjust iteration."""
    c = tiny_config("adapt_relax", **{"balance.lower": 50.0, "balance.upper": 60.0})
    tr = train.Trainer(c, str(tmp_path))
    d0 = _count(tr.state.d.masks)
    g_masks0 = jax.device_get(tr.state.g.masks)
    while tr.t < tr.schedule.total:
        tr.iteration()
    actions = [d.action for d in tr.controller.decisions]
    assert actions and all(a == "decrease" for a in actions if a != "wait")
    assert "decrease" in actions
    assert _count(tr.state.d.masks) < d0
    changed = jax.tree.map(lambda a, b: bool(np.any(a != np.asarray(b))), g_masks0,
                           tr.state.g.masks, is_leaf=lambda x: x is None)
    assert any(v for v in jax.tree.leaves(changed) if v is not None), "G masks never changed"


def test_run_writes_outputs_and_resume_is_exact(tmp_path):
    """run() leaves checkpoints, events, samples, balance plot and summary; 2N iterations in one
    run equal N + resume + N, parameter for parameter."""
    full = tmp_path / "full"
    c = tiny_config("adapt_relax")
    summary = train.run(c, str(full))
    for name in ("samples.png", "balance.png", "summary.json", "config.json",
                 "layer_density.md"):
        assert (full / name).exists(), name
    assert any(f.startswith("events.out.tfevents") for f in os.listdir(full))
    assert json.loads((full / "summary.json").read_text())["iterations"] == 40
    assert summary["flops_normalized"]["total"] < 1.0
    g = summary["sparsity"]["g"]
    # G DST moved masks at every event, so more weights were ever active than are active now.
    assert g["events"] == 40 // c.sparse.g_update_every - 1
    assert g["itop_rate"] > g["density_final"] == pytest.approx(c.sparse.density_g, abs=1e-3)

    split = tmp_path / "split"
    assert train.run(c, str(split), stop_after=20) is None
    train.run(c, str(split))
    a = train.Trainer(c, str(full))
    b = train.Trainer(c, str(split))
    from adapt_jax.checkpoint import Checkpointer

    sa = Checkpointer(str(full / "checkpoints")).restore_latest(a.state)
    sb = Checkpointer(str(split / "checkpoints")).restore_latest(b.state)
    assert sa[0] == sb[0] == 40
    same = jax.tree.map(lambda x, y: bool(np.array_equal(np.asarray(x), np.asarray(y))),
                        sa[1], sb[1], is_leaf=lambda x: x is None)
    assert all(v for v in jax.tree.leaves(same) if v is not None)
    assert sa[2]["controller"] == sb[2]["controller"]
    assert sa[2]["diagnostics"] == sb[2]["diagnostics"]


def test_evaluation_scores_fresh_samples_in_every_batch(tmp_path):
    """The evaluator asks for its samples batch by batch: each batch must be new images, or a
    score over N samples silently measures only the first batch (repeated)."""
    c = tiny_config("static")
    tr = train.Trainer(c, str(tmp_path))

    class Recorder:
        name = "cfd"
        description = "recording evaluator"
        batches: list[np.ndarray] = []

        def evaluate(self, generate):
            self.batches = [generate(16) for _ in range(3)]
            return {"cfd": 1.0}

    rec = Recorder()
    scores, improved = train._evaluate(tr, rec, t=0)
    assert scores == {"cfd": 1.0} and improved
    first, *rest = rec.batches
    for other in rest:
        assert not np.array_equal(first, other)
    again = Recorder()
    train._evaluate(tr, again, t=0)
    for a, b in zip(rec.batches, again.batches, strict=True):  # still deterministic per t
        np.testing.assert_array_equal(a, b)


def test_spectral_norm_state_of_d_moves_only_in_d_steps(tmp_path):
    """SPEC §3/§8: D's power-iteration vectors advance in D steps, never in the G step or the
    BR forwards (measuring must not change training); G's own SN/BN state does move there."""
    c = tiny_config("adapt_relax")
    tr = train.Trainer(c, str(tmp_path))
    assert "spectral_stats" in tr.state.d.stats
    reals, labels = tr._next_batch()

    def host(tree):
        return jax.tree.map(np.asarray, jax.device_get(tree))

    d_before, g_before = host(tr.state.d.stats), host(tr.state.g.stats)
    tr.state, _ = tr.steps["g_step"](tr.state, reals, labels, jax.numpy.int32(1),
                                     jax.numpy.bool_(True), jax.numpy.bool_(False),
                                     jax.numpy.float32(0.0))
    d_after_g, g_after_g = host(tr.state.d.stats), host(tr.state.g.stats)
    for a, b in zip(jax.tree.leaves(d_before), jax.tree.leaves(d_after_g), strict=True):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in
               zip(jax.tree.leaves(g_before), jax.tree.leaves(g_after_g), strict=True))
    tr.state, _ = tr.steps["d_step"](tr.state, reals, labels, jax.numpy.int32(0))
    d_after_d = host(tr.state.d.stats["spectral_stats"])
    assert any(not np.array_equal(a, b) for a, b in
               zip(jax.tree.leaves(d_before["spectral_stats"]), jax.tree.leaves(d_after_d),
                   strict=True))
