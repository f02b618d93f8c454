"""The sweep runner: grid rules, overrides, skip-on-rerun, the report and the worker pool."""

import json
import os
import sys

import pytest

from adapt_jax.gan import methods
from adapt_jax.tools import config_files, sweep, sweep_report
from adapt_jax.training.validation import check_workdir

# The tiny model of conftest.tiny_config, as --set overrides of the digits config.
TINY = [
    "model.g_ch=8", "model.d_ch=8", "model.z_dim=16", "train.num_iters=10", "train.batch_d=16",
    "train.batch_g=16", "train.log_every=5", "train.sample_every=10", "train.ckpt_every=10",
    "train.ema=0.9", "sparse.g_update_every=3", "sparse.d_adjust_every=4", "balance.br_every=1",
    "balance.window=3", "eval.every=1000", "eval.num_samples=200", "eval.batch_size=20",
]
EVAL_CACHE = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".pytest_cache",
                                          "eval_cache"))


def _argv(workdir, *extra):
    return ["--config=configs/biggan_tiny.py", f"--workdir={workdir}",
            *(f"--set={s}" for s in [*TINY, f"eval.cache_dir={EVAL_CACHE}"]), *extra]


def test_grid_rules():
    args = sweep.parse_args(["--config=configs/biggan_tiny.py", "--methods=static,adapt_relax,"
                             "adapt_strict,dda", "--densities=0.1", "--seeds=0,1",
                             "--strategies=balance,strong", "--d_max=1.0,0.5"])
    names = [r.name for r in sweep.build_grid(args)]
    assert names[:2] == ["static-balance-g0.1-s0", "static-balance-g0.1-s1"]  # d_max-free
    assert "static-strong-dmax0.5-g0.1-s1" in names
    assert "adapt_relax-dmax1-g0.1-s0" in names and "adapt_relax-dmax0.5-g0.1-s0" not in names
    assert "adapt_strict-dmax0.5-g0.1-s0" in names and "adapt_strict-dmax1-g0.1-s0" not in names
    assert "dda-dmax1-g0.1-s0" in names and "dda-dmax0.5-g0.1-s0" in names
    assert len(names) == len(set(names)) == 2 * (1 + 2 + 1 + 1 + 2)
    # The worker flags rebuild the same grid.
    assert sweep.build_grid(sweep.parse_args(sweep.to_argv(args))) == sweep.build_grid(args)


def test_build_config_applies_overrides_and_grid():
    args = sweep.parse_args(["--config=configs/biggan_tiny.py", "--methods=static",
                             "--densities=0.1", "--strategies=strong", "--d_max=0.3",
                             "--set=train.num_iters=7", "--set=train.lr_g=1e-3",
                             "--set=data.flip=true", "--set=sparse.density_d=0.9"])
    run = sweep.build_grid(args)[0]
    c = sweep.build_config(args, run)
    assert (c.train.num_iters, c.train.lr_g, c.data.flip) == (7, 1e-3, True)
    assert (c.strategy, c.sparse.d_max, c.sparse.density_g, c.sparse.density_d) == (
        "strong", 0.3, 0.1, 0.1)
    strict = sweep.RunSpec("adapt_strict", None, None, 0.1, 0)
    paper_d_max = methods.METHODS["adapt_strict"].paper_d_max
    assert sweep.build_config(args, strict).sparse.d_max == paper_d_max
    with pytest.raises(ValueError, match="no field"):
        config_files.apply_override(c, "train.nope=1")


@pytest.mark.slow
def test_sweep_trains_skips_and_reports(tmp_path):
    wd = str(tmp_path / "sw")
    argv = _argv(wd, "--methods=static,adapt_relax", "--densities=0.3", "--seeds=0")
    status = sweep.main(argv)
    assert status == {"static-balance-g0.3-s0": "done", "adapt_relax-g0.3-s0": "done"}
    summary = os.path.join(wd, "static-balance-g0.3-s0", "summary.json")
    mtime = os.path.getmtime(summary)
    assert sweep.main(argv) == {}  # everything finished: nothing is trained again
    assert os.path.getmtime(summary) == mtime
    md = open(os.path.join(wd, "results.md")).read()
    assert "| method | d_G = 30% |" in md
    assert "| STATIC-Balance |" in md and "| ADAPT_relax |" in md
    assert " ± " in md and md.count("**") >= 2  # mean ± std, the best score in bold
    for png in ("br.png", "density_d.png", "score_vs_flops.png"):
        assert os.path.getsize(os.path.join(wd, png)) > 1000
    runs = json.load(open(os.path.join(wd, "results.json")))["runs"]
    adapt = next(r for r in runs if r["method"] == "adapt_relax")
    assert adapt["balance"]["checks"] >= 1 and adapt["status"] == "done"


def test_rerun_with_other_settings_is_refused_never_relabelled(tmp_path):
    """The same sweep again with another --set: a finished run is not skipped under the new
    settings (nor its run.json rewritten); only a longer num_iters continues it (resuming
    extends the run), and settings that change no result are ignored."""
    base = ["--config=configs/biggan_tiny.py", "--methods=static", "--densities=0.3",
            f"--workdir={tmp_path}", *(f"--set={s}" for s in TINY)]

    def prepared(*extra):
        args = sweep.parse_args(base + list(extra))
        return args, sweep.prepare(args, sweep.build_grid(args))

    args, configs = prepared()
    (name, config), = configs.items()
    wd = tmp_path / name
    check_workdir(config, str(wd))  # what train.run records, then a finished run
    (wd / "summary.json").write_text("{}")
    record = (wd / "run.json").read_text()
    assert sweep.finished(str(wd), prepared()[1][name])
    assert sweep.finished(str(wd), prepared("--set=train.log_every=2")[1][name])
    with pytest.raises(SystemExit, match=r"already run with other settings \(train.lr_g: "
                                         r"0.0001 -> 0.001\); use a new --workdir"):
        prepared("--set=train.lr_g=1e-3")
    with pytest.raises(SystemExit, match="train.num_iters: 10 -> 5"):
        prepared("--set=train.num_iters=5")
    assert (wd / "run.json").read_text() == record
    assert not sweep.finished(str(wd), prepared("--set=train.num_iters=20")[1][name])


def _fake_runs(root, with_eval=True):
    for name, method, seed, score in [("a0", "static", 0, 10.0), ("a1", "static", 1, 14.0),
                                      ("b0", "adapt_relax", 0, 9.0)]:
        d = root / name
        d.mkdir()
        record = {"method": method, "strategy": "balance" if method == "static" else None,
                  "d_max": None, "density_g": 0.1, "seed": seed, "name": name,
                  "config": "x", "setting": None if method == "static" else 1.0,
                  "band": [0.45, 0.55], "num_iters": 100}
        (d / "run.json").write_text(json.dumps(record))
        summary = {"flops_normalized": {"total": 0.1 + seed / 10}, "iterations": 100,
                   "density_d": 0.1, "history": {"br": [[10, 0.3], [90, 0.5]]}}
        if with_eval:  # the best is the first evaluation; the last one has P = R = 0
            summary["eval"] = {"name": "cfd", "best": score, "best_iteration": 50, "history": [
                [50, {"cfd": score, "precision": 0.5 + seed / 10, "recall": 0.2 + seed / 10,
                      "class_accuracy": 0.9 - seed / 10}],
                [100, {"cfd": score + 5, "precision": 0.0, "recall": 0.0}]]}
        (d / "summary.json").write_text(json.dumps(summary))


def test_report_aggregates_seeds_and_bolds_lowest(tmp_path):
    """Mean ± sample std over seeds, and the lower mean in bold, without training."""
    _fake_runs(tmp_path)
    md = open(sweep_report.write_report(str(tmp_path))).read()
    assert "| STATIC-Balance | 12.00 ± 2.83 |" in md
    assert "| ADAPT_relax | **9.00 (n=1)** |" in md  # one seed: no spread shown, n shown
    assert "| STATIC-Balance | 15.00% ± 7.07% |" in md  # FLOPs table, not bolded


def test_report_shows_precision_and_recall_of_the_best_evaluation(tmp_path):
    _fake_runs(tmp_path)
    md = open(sweep_report.write_report(str(tmp_path))).read()
    precision = md[md.index("## Precision at the best cfd"):md.index("## Recall")]
    assert "| STATIC-Balance | 0.550 ± 0.071 |" in precision
    assert "| ADAPT_relax | 0.500 (n=1) |" in precision  # higher is better: nothing bolded
    recall = md[md.index("## Recall at the best cfd"):md.index("## Normalized")]
    assert "| STATIC-Balance | 0.250 ± 0.071 |" in recall
    accuracy = md[md.index("## Class accuracy at the best cfd"):md.index("## Normalized")]
    assert "| STATIC-Balance | 0.850 ± 0.071 |" in accuracy
    assert "| a1 | done | 14.00 | 50 | 0.600 | 0.300 | 0.800 |" in md
    runs = json.load(open(tmp_path / "results.json"))["runs"]
    got = {r["name"]: [r["precision"], r["recall"], r["class_accuracy"]] for r in runs}
    assert got == {"a0": [0.5, 0.2, 0.9], "a1": [0.6, pytest.approx(0.3), 0.8],
                   "b0": [0.5, 0.2, 0.9]}


def test_report_without_eval_scores(tmp_path):
    _fake_runs(tmp_path, with_eval=False)
    md = open(sweep_report.write_report(str(tmp_path))).read()
    assert "No run reports an evaluation score" in md and "## Score" not in md
    assert "## Precision" not in md and "## Recall" not in md
    assert "## Normalized training FLOPs" in md
    assert not (tmp_path / "score_vs_flops.png").exists() and (tmp_path / "br.png").exists()


def test_worker_pool_runs_at_most_n_at_a_time(tmp_path, monkeypatch):
    """--parallel keeps N workers busy; a worker that leaves no summary.json is 'failed'."""
    args = sweep.parse_args(["--config=configs/biggan_tiny.py", "--methods=static",
                             "--densities=0.1,0.2,0.3", f"--workdir={tmp_path}",
                             "--parallel=2"])
    names = [r.name for r in sweep.build_grid(args)]
    script = ("import os, sys, time; d = sys.argv[1]; open(os.path.join(d, 'start'), 'w');"
              "n = sum(os.path.exists(os.path.join(d, '..', x, 'start')) and not "
              "os.path.exists(os.path.join(d, '..', x, 'end')) for x in os.listdir(d + '/..'));"
              "time.sleep(1.5); open(os.path.join(d, 'end'), 'w').write(str(n));"
              "'0.3' in d or open(os.path.join(d, 'summary.json'), 'w')")
    monkeypatch.setattr(sweep, "worker_command", lambda a, name: [
        sys.executable, "-c", script, os.path.join(a.workdir, name)])
    for n in names:
        (tmp_path / n).mkdir()
    status = sweep.train_in_subprocesses(args, names)
    assert status == {names[0]: "done", names[1]: "done", names[2]: "failed"}
    assert max(int((tmp_path / n / "end").read_text()) for n in names) <= 2


def test_checks_in_band_are_counted_against_the_band_of_each_check(tmp_path):
    """A reference band moves with training: each D check is judged by the band it saw, not
    by the config's [lower, upper]; checks in the first 20% and 'wait's do not count."""
    _fake_runs(tmp_path)
    path = tmp_path / "b0" / "summary.json"
    s = json.loads(path.read_text())
    s["band"] = {"mode": "reference", "used": True, "lower": 0.45, "upper": 0.55}
    s["d_decisions"] = [
        {"t": 10, "action": "decrease", "value": 0.1, "lower": 0.0, "upper": 1.0},
        {"t": 40, "action": "none", "value": 0.2, "lower": 0.15, "upper": 0.25},
        {"t": 60, "action": "increase", "value": 0.3, "lower": 0.15, "upper": 0.25},
        {"t": 80, "action": "none", "value": 0.5, "lower": 0.45, "upper": 0.55},
        {"t": 90, "action": "wait", "value": 0.5, "lower": 0.45, "upper": 0.55}]
    path.write_text(json.dumps(s))
    md = open(sweep_report.write_report(str(tmp_path))).read()
    balance = md[md.index("## Balance"):]
    row = next(line for line in balance.splitlines() if line.startswith("| ADAPT_relax"))
    assert "| 2/3 |" in row, row
