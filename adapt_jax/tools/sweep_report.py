"""Aggregate a sweep directory into results.md, results.json and plots.

    python -m adapt_jax.tools.sweep_report --workdir=runs/sweeps/NAME

Tables are laid out like the paper's Tables 1-3 (rows: methods, columns: generator densities;
one table per d_max setting): the evaluator's best score, the precision and recall of that same
evaluation, and the normalized training FLOPs, each mean ± std over seeds, lowest score in bold.
Plots: windowed BR over iterations per method (Fig. 2), D density over iterations (Fig. 5-6),
and score against training FLOPs. Every run directory holding a run.json (written by `sweep`)
is included, finished or not.
"""

from __future__ import annotations

import argparse
import dataclasses
import glob
import json
import math
import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from adapt_jax.gan import methods
from adapt_jax.training import report

ORDER = list(methods.METHODS)  # the paper's row order: baselines first, ADAPT last
EARLY = 0.2  # "after the first 20% of training"
# What the evaluator reports beside the score: diversity, and label correctness (conditional
# models scored with a labelled source's classifier; the table is left out where no run has it).
KEY_TITLES = {"precision": "Precision", "recall": "Recall", "class_accuracy": "Class accuracy"}
BESIDE_SCORE = tuple(KEY_TITLES)


@dataclasses.dataclass
class Run:
    """One run directory: its grid record, summary (None until finished) and histories."""

    record: dict[str, Any]
    summary: dict[str, Any] | None
    history: dict[str, list]
    error: str | None

    @property
    def label(self) -> str:
        """Paper-style row name, e.g. STATIC-Strong, SDST-Balance-RigL, ADAPT_relax."""
        r = self.record
        spec = methods.get_method(r["method"])
        parts = [spec.label]
        if r["strategy"]:
            parts.append(r["strategy"].capitalize())
        if spec.variant:
            parts.append(spec.variant)
        return "-".join(parts)

    def line_label(self, many_settings: bool) -> str:
        s = self.record["setting"]
        return f"{self.label} (d_max={s:g})" if many_settings and s is not None else self.label

    @property
    def sort_key(self) -> tuple:
        r = self.record
        return (ORDER.index(r["method"]), r["strategy"] or "", -(r["setting"] or 0.0))

    @property
    def status(self) -> str:
        return "done" if self.summary else ("failed" if self.error else "unfinished")

    @property
    def score(self) -> float | None:
        ev = (self.summary or {}).get("eval") or {}
        return ev.get("best")

    def at_best(self, key: str) -> float | None:
        """`key` (one of BESIDE_SCORE) of the evaluation that gave the best score."""
        ev = (self.summary or {}).get("eval") or {}
        scores = [s for t, s in ev.get("history", []) if t == ev.get("best_iteration")]
        return scores[-1].get(key) if scores else None

    @property
    def flops(self) -> float | None:
        return ((self.summary or {}).get("flops_normalized") or {}).get("total")

    def balance_stats(self) -> dict[str, float]:
        """BR and D-density facts after the first 20% of training (Fig. 2 and Sec. 5.3)."""
        start = EARLY * self.record["num_iters"]
        br = [v for t, v in self.history.get("br", []) if t > start and _finite(v)]
        checks = [d for d in (self.summary or {}).get("d_decisions", [])
                  if d["t"] > start and d["action"] != "wait" and _finite(d["value"])]
        dens = [v for _, v in self.history.get("density_d", [])]
        return {"br_mean": float(np.mean(br)) if br else math.nan,
                "checks": len(checks),  # each against the band in force at that check
                "in_band": sum(d["lower"] <= d["value"] <= d["upper"] for d in checks),
                "d_final": (self.summary or {}).get("density_d", math.nan),
                "d_min": min(dens, default=math.nan), "d_max": max(dens, default=math.nan)}


def _finite(v: Any) -> bool:
    return v is not None and math.isfinite(v)


def _read_json(path: str) -> Any:
    with open(path) as f:
        return json.load(f)


def latest_host_state(run_dir: str) -> dict[str, Any] | None:
    """Host JSON of the newest checkpoint (orbax writes it as checkpoints/<step>/host/metadata)."""
    paths = glob.glob(os.path.join(run_dir, "checkpoints", "*", "host", "metadata"))
    steps = sorted((int(p.split(os.sep)[-3]), p) for p in paths if p.split(os.sep)[-3].isdigit())
    for _, path in reversed(steps):
        try:
            return _read_json(path)
        except (OSError, ValueError):
            continue
    return None


def load_run(run_dir: str) -> Run:
    summary_path = os.path.join(run_dir, "summary.json")
    summary = _read_json(summary_path) if os.path.isfile(summary_path) else None
    history = (summary or {}).get("history")
    if history is None:
        history = (latest_host_state(run_dir) or {}).get("history", {})
    error_path = os.path.join(run_dir, "error.txt")
    error = None
    if os.path.isfile(error_path):
        with open(error_path) as f:
            error = (f.read().strip().splitlines() or ["failed"])[-1]
    return Run(_read_json(os.path.join(run_dir, "run.json")), summary, history, error)


def load_runs(workdir: str) -> list[Run]:
    dirs = sorted(glob.glob(os.path.join(workdir, "*", "run.json")))
    return sorted((load_run(os.path.dirname(p)) for p in dirs),
                  key=lambda r: (r.sort_key, r.record["density_g"], r.record["seed"]))


# -- tables ----------------------------------------------------------------------------------
def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample std (0 for a single seed)."""
    a = np.asarray(values, float)
    return float(a.mean()), float(a.std(ddof=1)) if len(a) > 1 else 0.0


def _group(runs: Sequence[Run], value: Callable[[Run], float | None]
           ) -> dict[tuple[str, float], list[float]]:
    cells: dict[tuple[str, float], list[float]] = {}
    for r in runs:
        v = value(r)
        if r.summary and _finite(v):
            cells.setdefault((r.label, r.record["density_g"]), []).append(v)
    return cells


def markdown_table(runs: Sequence[Run], value: Callable[[Run], float | None],
                   fmt: Callable[[float], str], bold_lowest: bool) -> str:
    """Rows: methods; columns: d_G; cells: mean ± std over the seeds that finished."""
    rows = list(dict.fromkeys(r.label for r in runs))
    cols = sorted({r.record["density_g"] for r in runs})
    cells = {k: mean_std(v) + (len(v),) for k, v in _group(runs, value).items()}
    best = {c: min((cells[(row, c)][0] for row in rows if (row, c) in cells), default=None)
            for c in cols}
    n_max = max((n for _, _, n in cells.values()), default=0)
    lines = ["| method | " + " | ".join(f"d_G = {c:.0%}" for c in cols) + " |",
             "|---" * (len(cols) + 1) + "|"]
    for row in rows:
        out = []
        for c in cols:
            if (row, c) not in cells:
                out.append("–")
                continue
            m, s, n = cells[(row, c)]
            # One seed has no spread to show: "± 0.00" would claim a precision it lacks.
            text = (fmt(m) if n == 1 else f"{fmt(m)} ± {fmt(s)}") + (
                f" (n={n})" if n < n_max or n == 1 else "")
            out.append(f"**{text}**" if bold_lowest and m == best[c] else text)
        lines.append(f"| {row} | " + " | ".join(out) + " |")
    return "\n".join(lines)


def settings_of(runs: Sequence[Run]) -> list[float | None]:
    """d_max settings, relaxed (largest) first; [None] when no run depends on d_max."""
    found = sorted({r.record["setting"] for r in runs if r.record["setting"] is not None},
                   reverse=True)
    return found or [None]


def in_setting(runs: Sequence[Run], setting: float | None) -> list[Run]:
    return [r for r in runs if r.record["setting"] in (None, setting)]


def _setting_title(setting: float | None) -> str:
    if setting is None:
        return ""
    return f" — d_max = {setting:g} ({'relaxed' if setting >= 1.0 else 'strict'})"


def balance_table(runs: Sequence[Run], many: bool) -> str:
    lines = ["| method | d_G | mean BR (t > 20%) | D checks in band (t > 20%) | final d_D "
             "| d_D range |", "|---|---|---|---|---|---|"]
    groups: dict[tuple[str, float], list[dict]] = {}
    for r in runs:
        if r.summary:
            groups.setdefault((r.line_label(many), r.record["density_g"]), []).append(
                r.balance_stats())
    for (label, d_g), stats in groups.items():
        checks = sum(s["checks"] for s in stats)
        band = f"{sum(s['in_band'] for s in stats)}/{checks}" if checks else "–"
        br, _ = mean_std([s["br_mean"] for s in stats])
        d_final, _ = mean_std([s["d_final"] for s in stats])
        lo, hi = min(s["d_min"] for s in stats), max(s["d_max"] for s in stats)
        lines.append(f"| {label} | {d_g:.0%} | {br:.3f} | {band} | {d_final:.3f} "
                     f"| {lo:.2f}–{hi:.2f} |")
    return "\n".join(lines)


def runs_table(runs: Sequence[Run]) -> str:
    lines = ["| run | status | score | best at | precision | recall | class accuracy | FLOPs "
             "| final d_D | final BR | seconds |", "|---" * 11 + "|"]
    for r in runs:
        s = r.summary or {}
        ev = s.get("eval") or {}
        cells = [r.record["name"], r.status if not r.error else f"failed: {r.error[:60]}",
                 _num(r.score, "{:.2f}"), str(ev.get("best_iteration", "–")),
                 *(_num(r.at_best(key), "{:.3f}") for key in BESIDE_SCORE),
                 _num(r.flops, "{:.2%}"), _num(s.get("density_d"), "{:.3f}"),
                 _num(s.get("br_avg"), "{:.3f}"), _num(s.get("seconds_this_process"), "{:.0f}")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _num(v: Any, fmt: str) -> str:
    return fmt.format(v) if _finite(v) else "–"


# -- the report ------------------------------------------------------------------------------
def aggregate(runs: Sequence[Run]) -> dict[str, Any]:
    """results.json: per-run numbers (no histories) for re-plotting or comparing sweeps."""
    out = []
    for r in runs:
        s = r.summary or {}
        out.append({**r.record, "label": r.label, "status": r.status, "score": r.score,
                    "score_name": (s.get("eval") or {}).get("name"),
                    **{key: r.at_best(key) for key in BESIDE_SCORE}, "flops_total": r.flops,
                    "br_final": s.get("br_avg"), "density_d_final": s.get("density_d"),
                    "seconds": s.get("seconds_this_process"),
                    **({"balance": r.balance_stats()} if r.summary else {})})
    return {"runs": out}


def render(runs: Sequence[Run], plots: dict[str, bool]) -> str:
    scored = [r for r in runs if r.summary and _finite(r.score)]
    name = scored[0].summary["eval"]["name"] if scored else None
    done = sum(r.status == "done" for r in runs)
    many = len(settings_of(runs)) > 1
    cfg = runs[0].record["config"] if runs else "?"
    md = [f"# Sweep results ({cfg})", "",
          f"{done}/{len(runs)} runs finished. Cells: mean ± std over seeds (sample std; "
          "`(n=k)` when fewer seeds finished than elsewhere in the table; a single seed shows "
          "its value alone).", ""]
    if name is None:
        md += ["No run reports an evaluation score (`eval` in summary.json) yet; only FLOPs "
               "and balance are tabulated.", ""]
    for setting in settings_of(runs):
        group = in_setting(runs, setting)
        if name is not None:
            md += [f"## Score: best {name} (lower is better){_setting_title(setting)}", "",
                   markdown_table(group, lambda r: r.score, lambda v: f"{v:.2f}", True), ""]
            for key in BESIDE_SCORE:
                if any(_finite(r.at_best(key)) for r in group if r.summary):
                    md += [f"## {KEY_TITLES[key]} at the best {name} (higher is better)"
                           f"{_setting_title(setting)}", "",
                           markdown_table(group, lambda r, k=key: r.at_best(k),
                                          lambda v: f"{v:.3f}", False), ""]
        md += [f"## Normalized training FLOPs{_setting_title(setting)}", "",
               markdown_table(group, lambda r: r.flops, lambda v: f"{100 * v:.2f}%", False), ""]
    md += ["## Balance", "", "BR is the windowed (time-averaged) balance ratio; a D check is "
           "one scheduled density decision of the BR controller.", "",
           balance_table(runs, many), ""]
    for fname, title in (("br.png", "Windowed BR over iterations (cf. paper Fig. 2)"),
                         ("density_d.png", "D density over iterations (cf. Fig. 5-6)"),
                         ("score_vs_flops.png", "Score against training FLOPs")):
        if plots.get(fname):
            md += [f"### {title}", "", f"![{title}]({fname})", ""]
    md += ["## Runs", "", runs_table(runs), ""]
    return "\n".join(md)


def write_report(workdir: str) -> str:
    """Write results.md, results.json and the plots into `workdir`; returns results.md's path."""
    from adapt_jax.tools import sweep_plots  # imports this module's Run: lazily, no cycle

    runs = load_runs(workdir)
    at = lambda name: os.path.join(workdir, name)  # noqa: E731
    plots = {
        "br.png": sweep_plots.plot_curves(at("br.png"), runs, "br", "windowed BR", False),
        "density_d.png": sweep_plots.plot_curves(at("density_d.png"), runs, "density_d",
                                                 "D density", True),
        "score_vs_flops.png": sweep_plots.plot_score_vs_flops(at("score_vs_flops.png"), runs),
    }
    report.write_json_atomic(os.path.join(workdir, "results.json"), aggregate(runs))
    path = os.path.join(workdir, "results.md")
    with open(path, "w") as f:
        f.write(render(runs, plots))
    return path


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m adapt_jax.tools.sweep_report",
                                description=__doc__.splitlines()[0])
    p.add_argument("--workdir", required=True, help="a sweep directory")
    print(write_report(p.parse_args(argv).workdir))


if __name__ == "__main__":
    main()
