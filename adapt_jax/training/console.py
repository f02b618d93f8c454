"""What a person watching a run sees; every scalar also goes to TensorBoard.

- `ProgressBar`: one live line (iteration, it/s, ETA), on a terminal only; logs and pipes get
  no control characters.
- `status_line`: the few numbers that matter, once per log interval (losses, the balance
  criterion against its band, the densities of G and D, the score when evaluated).
- `final_table`: a compact end-of-run summary instead of the whole summary dict.

Rates are measured over the last `window_s` seconds, not since the start: the first iterations
include compilation and evaluations, so a cumulative rate (and its ETA) is wrong for most of a
run.
"""

from __future__ import annotations

import collections
import logging
import math
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any, TextIO

_CLEAR = "\r\033[K"  # carriage return + erase to the end of the line


def format_duration(seconds: float | None) -> str:
    """'42s', '3:07', '1:02:03'; '--' when unknown."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return "--"
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class RateMeter:
    """Iterations per second over the recent past (at least the last two updates)."""

    def __init__(self, window_s: float = 30.0, clock: Callable[[], float] = time.monotonic):
        self.window_s, self.clock = window_s, clock
        self._points: collections.deque[tuple[float, int]] = collections.deque()

    def update(self, t: int) -> None:
        now = self.clock()
        self._points.append((now, t))
        while len(self._points) > 2 and now - self._points[1][0] >= self.window_s:
            self._points.popleft()

    def rate(self) -> float | None:
        if len(self._points) < 2:
            return None
        (t0, i0), (t1, i1) = self._points[0], self._points[-1]
        return (i1 - i0) / (t1 - t0) if t1 > t0 else None

    def eta(self, t: int, total: int) -> float | None:
        rate = self.rate()
        return (total - t) / rate if rate else None


class ProgressBar:
    """`[######------] 1200/2500  48%  12.3 it/s  ETA 1:46`, redrawn in place.

    Disabled (no output at all) unless `stream` is a terminal. Redraws at most every
    `min_interval` seconds, so per-iteration calls cost next to nothing.
    """

    def __init__(self, total: int, stream: TextIO | None = None, enabled: bool | None = None,
                 clock: Callable[[], float] = time.monotonic, min_interval: float = 0.2,
                 width: int = 24):
        self.total, self.stream = total, stream or sys.stdout
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.clock, self.min_interval, self.width = clock, min_interval, width
        self.meter = RateMeter(clock=clock)
        self._t, self._last_draw, self._shown = 0, -math.inf, False

    def render(self, t: int) -> str:
        done = min(max(t / self.total, 0.0), 1.0) if self.total else 1.0
        filled = round(done * self.width)
        rate = self.meter.rate()
        speed = f"{rate:.3g} it/s" if rate else "-- it/s"
        eta = format_duration(self.meter.eta(t, self.total))
        return (f"[{'#' * filled}{'-' * (self.width - filled)}] {t}/{self.total} "
                f"{done:4.0%}  {speed}  ETA {eta}")

    def update(self, t: int) -> None:
        self._t = t
        self.meter.update(t)
        now = self.clock()
        if self.enabled and (now - self._last_draw >= self.min_interval or t >= self.total):
            self._draw()
            self._last_draw = now

    def _draw(self) -> None:
        self.stream.write(_CLEAR + self.render(self._t))
        self.stream.flush()
        self._shown = True

    def clear(self) -> None:
        """Erase the bar (before other output); the next update draws it again."""
        if self._shown:
            self.stream.write(_CLEAR)
            self.stream.flush()
            self._shown = False

    def write(self, line: str) -> None:
        """Print a line above the bar."""
        self.clear()
        self.stream.write(line + "\n")
        if self.enabled and self._t:
            self._draw()
        else:
            self.stream.flush()

    def close(self) -> None:
        """Leave the final state of the bar on its own line."""
        if self.enabled and self._t:
            self._draw()
            self.stream.write("\n")
            self.stream.flush()
            self._shown = False

    def log_filter(self) -> logging.Filter:
        """A filter for a log handler writing to the same terminal: erases the bar before each
        record, so log lines never land in the middle of it."""
        bar = self

        class _ClearBar(logging.Filter):
            def filter(self, record: logging.LogRecord) -> bool:
                bar.clear()
                return True

        return _ClearBar()


def _num(v: float) -> str:
    return f"{v:.3g}" if math.isfinite(v) else str(v)


def status_line(t: int, total: int, scalars: Mapping[str, float],
                band: tuple[float, float] | None = None, criterion: str = "br",
                scores: Mapping[str, float] | None = None) -> str:
    """`t=1200/2500 d 0.812 g 1.23 | br 0.31 [0.45,0.55] | density G 0.20 D 0.35 | cfd 12.3`.

    `scalars` are the logged ones (d_loss, g_loss, br_avg, density_g, density_d,
    iterations_per_sec); missing ones are left out. `scores` are the latest evaluation's.
    """
    parts = [f"t={t}/{total}"]
    losses = " ".join(f"{name} {_num(scalars[key])}" for name, key in
                      (("d", "d_loss"), ("g", "g_loss")) if key in scalars)
    if losses:
        parts.append(losses)
    if "br_avg" in scalars:
        where = f" [{band[0]:.2f},{band[1]:.2f}]" if band else ""
        parts.append(f"{criterion} {_num(scalars['br_avg'])}{where}")
    if "density_g" in scalars and "density_d" in scalars:
        parts.append(f"density G {scalars['density_g']:.2f} D {scalars['density_d']:.2f}")
    if scores:
        parts.append(" ".join(f"{k} {_num(v)}" for k, v in scores.items()))
    if "iterations_per_sec" in scalars:
        parts.append(f"{_num(scalars['iterations_per_sec'])} it/s")
    return " | ".join(parts)


class RunConsole:
    """The console of one training run: the bar (on a terminal, on the processes asked), and one
    status line per call through absl logging, so log files and pipes get it too. The bar is
    erased before every log record of `handler` (default: absl's), so the two never mix."""

    def __init__(self, total: int, band: tuple[float, float] | None = None,
                 criterion: str = "br", bar: bool = True, stream: TextIO | None = None,
                 handler: logging.Handler | None = None):
        from absl import logging as absl_logging

        self.band, self.criterion, self._log = band, criterion, absl_logging.info
        self.bar = ProgressBar(total, stream=stream, enabled=None if bar else False)
        self.handler = handler or absl_logging.get_absl_handler()
        self._filter = self.bar.log_filter()
        self.handler.addFilter(self._filter)

    def iteration(self, t: int) -> None:
        self.bar.update(t)

    def status(self, t: int, scalars: Mapping[str, float],
               scores: Mapping[str, float] | None = None) -> None:
        self._log("%s", status_line(t, self.bar.total, scalars, self.band, self.criterion,
                                    scores))

    def close(self) -> None:
        self.bar.close()
        self.handler.removeFilter(self._filter)


# What a finished run leaves in its workdir, for the "files" row.
OUTPUTS = ("samples.png", "balance.png", "summary.json", "layer_density.md", "checkpoints/")


def final_table(summary: Mapping[str, Any], band: tuple[float, float] | None = None) -> str:
    """A dozen lines: run, best score and where, final densities, BR, training FLOPs, time and
    where the files are (the full record stays in summary.json)."""
    ev = summary.get("eval") or {}
    rows = [("run", f"{summary['method']} ({summary.get('strategy', '-')}), "
                    f"{summary['iterations']} iterations")]
    if ev.get("best") is not None:
        rows.append((f"best {ev['name']}", f"{_num(ev['best'])} at iteration "
                                           f"{ev['best_iteration']}"))
        if ev.get("history"):
            t, scores = ev["history"][-1]
            rows.append((f"final {ev['name']}", f"{_num(scores[ev['name']])} at iteration {t}"))
    else:
        rows.append(("score", "not evaluated"))
    rows.append(("density", f"G {summary['density_g']:.3f}  D {summary['density_d']:.3f}"))
    used = summary.get("band") or {}
    if band is None and used.get("used"):
        band = (used["lower"], used["upper"])
    if summary.get("br_avg") is not None:
        where = (f"  ({used.get('mode', 'paper')} band [{band[0]:.3g}, {band[1]:.3g}])"
                 if band else "")
        rows.append(("BR (time-avg)", f"{_num(summary['br_avg'])}{where}"))
    fl = summary.get("flops_normalized") or {}
    if fl:
        rows.append(("training FLOPs", f"{fl['total']:.3f} of dense (G {fl['g']:.3f}, "
                                       f"D {fl['d']:.3f}; {summary.get('flops_mode', '')})"))
    rows.append(("time", format_duration(summary.get("seconds_this_process"))
                 + " (this process)"))
    workdir = summary.get("workdir", ".")
    rows.append(("files", f"{workdir}/  ({', '.join(OUTPUTS)})"))
    rows.append(("TensorBoard", f"tensorboard --logdir {workdir}"))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"  {k:<{width}}  {v}" for k, v in rows)
