"""The sweep report's figures: BR and D density over iterations (the paper's Fig. 2 and 5-6)
and score against training FLOPs, mean over seeds."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from adapt_jax.tools.sweep_report import Run, _finite, mean_std, settings_of

LINESTYLES = ("-", "--", ":", "-.")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _on_grid(points: Sequence[Sequence[float]], grid: np.ndarray, step: bool) -> np.ndarray:
    t, v = (np.asarray(x, float) for x in zip(*points, strict=True))
    if step:
        return v[np.clip(np.searchsorted(t, grid, side="right") - 1, 0, len(v) - 1)]
    return np.interp(grid, t, v)


def plot_curves(path: str, runs: Sequence[Run], key: str, ylabel: str, step: bool) -> bool:
    """One panel per d_G, one line per method (mean over seeds, min-max shaded)."""
    done = [r for r in runs if r.summary and r.history.get(key)]
    if not done:
        return False
    plt = _pyplot()
    many = len(settings_of(runs)) > 1
    cols = sorted({r.record["density_g"] for r in done})
    labels = list(dict.fromkeys(r.line_label(many) for r in done))
    colors = {lab: plt.cm.tab10(i % 10) for i, lab in enumerate(labels)}
    fig, axes = plt.subplots(1, len(cols), figsize=(5.5 * len(cols), 3.8), squeeze=False)
    for ax, d_g in zip(axes[0], cols, strict=True):
        for lab in labels:
            group = [r for r in done if r.line_label(many) == lab and r.record["density_g"] == d_g]
            if not group:
                continue
            end = max(r.summary["iterations"] for r in group)
            grid = np.linspace(min(r.history[key][0][0] for r in group), end, 200)
            ys = np.stack([_on_grid(r.history[key], grid, step) for r in group])
            ax.plot(grid, ys.mean(0), color=colors[lab], lw=1.3, label=lab,
                    ls=LINESTYLES[labels.index(lab) % len(LINESTYLES)])  # overlaps stay visible
            if len(group) > 1:
                ax.fill_between(grid, ys.min(0), ys.max(0), color=colors[lab], alpha=0.15)
        if key == "br":
            _draw_band(ax, [r for r in done if r.record["density_g"] == d_g])
        ax.set_title(f"d_G = {d_g:.0%}")
        ax.set_xlabel("iteration")
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def plot_score_vs_flops(path: str, runs: Sequence[Run]) -> bool:
    """Mean score against mean normalized training FLOPs; error bars are stds over seeds."""
    done = [r for r in runs if r.summary and _finite(r.score) and _finite(r.flops)]
    if not done:
        return False
    plt = _pyplot()
    many = len(settings_of(runs)) > 1
    labels = list(dict.fromkeys(r.line_label(many) for r in done))
    markers = dict(zip(sorted({r.record["density_g"] for r in done}), "osD^v<>p*", strict=False))
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for i, lab in enumerate(labels):
        for d_g, marker in markers.items():
            group = [r for r in done if r.line_label(many) == lab and r.record["density_g"] == d_g]
            if not group:
                continue
            x, xs = mean_std([r.flops for r in group])
            y, ys = mean_std([r.score for r in group])
            ax.errorbar(100 * x, y, xerr=100 * xs, yerr=ys, fmt=marker, color=plt.cm.tab10(i % 10),
                        capsize=2, label=f"{lab}, d_G = {d_g:.0%}")
    ax.set_xlabel("normalized training FLOPs (%)")
    ax.set_ylabel(f"{done[0].summary['eval']['name']} (lower is better)")
    ax.legend(fontsize=6, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def _draw_band(ax, runs: Sequence[Run]) -> None:
    """The band of the first run with a controller: each check's band, held until the next."""
    for r in runs:
        checks = [d for d in r.summary.get("d_decisions", []) if d["action"] != "wait"]
        if checks:
            ax.fill_between([d["t"] for d in checks], [d["lower"] for d in checks],
                            [d["upper"] for d in checks], step="post", color="tab:green",
                            alpha=0.15, label=f"{r.summary['band']['mode']} band ({r.label})")
            return
