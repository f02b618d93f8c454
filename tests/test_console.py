"""Console output: progress bar (terminals only, recent rate), periodic line, final table."""

from __future__ import annotations

import io
import logging

import pytest

from adapt_jax.training import console


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("seconds,text", [(None, "--"), (float("nan"), "--"), (4.4, "4s"),
                                          (187, "3:07"), (3723, "1:02:03")])
def test_format_duration(seconds, text):
    assert console.format_duration(seconds) == text


def test_rate_and_eta_follow_recent_iterations_not_the_compile():
    clock = Clock()
    meter = console.RateMeter(window_s=30.0, clock=clock)
    clock.now += 120.0  # iteration 1 includes a 2-minute compile
    meter.update(1)
    for t in range(2, 402):  # then 10 it/s for 40 s
        clock.now += 0.1
        meter.update(t)
    assert meter.rate() == pytest.approx(10.0)
    assert meter.eta(401, 1401) == pytest.approx(100.0)
    for t in range(402, 502):  # slows to 2 it/s: after a window, the rate says so
        clock.now += 0.5
        meter.update(t)
    assert meter.rate() == pytest.approx(2.0)


def test_rate_unknown_until_two_updates():
    meter = console.RateMeter(clock=Clock())
    assert meter.rate() is None and meter.eta(0, 10) is None
    meter.update(5)
    assert meter.rate() is None


def test_bar_is_silent_when_not_a_terminal():
    out = io.StringIO()
    bar = console.ProgressBar(100, stream=out)
    for t in range(1, 101):
        bar.update(t)
    bar.write("t=100 line")
    bar.close()
    assert out.getvalue() == "t=100 line\n"


def test_bar_on_a_terminal_shows_progress_rate_and_eta_at_a_limited_rate():
    out, clock = Terminal(), Clock()
    bar = console.ProgressBar(2500, stream=out, clock=clock, min_interval=0.25, width=10)
    for t in range(1, 1202):  # 8 it/s, redrawn every 0.25 s: at t = 1, 3, ..., 1201
        clock.now += 0.125
        bar.update(t)
    draws = out.getvalue().split("\r\033[K")[1:]
    assert len(draws) == 601
    assert draws[-1] == "[#####-----] 1201/2500  48%  8 it/s  ETA 2:42"
    bar.write("a status line")
    assert out.getvalue().endswith("\r\033[Ka status line\n\r\033[K" + draws[-1])
    clock.now += 0.125 * 1299
    bar.update(2500)  # the last iteration is always drawn
    bar.close()
    assert out.getvalue().endswith("2500/2500 100%  8 it/s  ETA 0s\n")


def test_log_filter_erases_the_bar_before_a_record():
    out = Terminal()
    bar = console.ProgressBar(10, stream=out, clock=Clock())
    bar.update(3)
    record = logging.LogRecord("x", logging.WARNING, __file__, 1, "msg", None, None)
    assert bar.log_filter().filter(record)
    assert out.getvalue().endswith("\r\033[K") and not bar._shown


def test_run_console_logs_status_lines_and_keeps_the_bar_out_of_them(caplog):
    out, records = Terminal(), []

    class Handler(logging.Handler):
        def emit(self, record):
            records.append((out.getvalue().endswith("\r\033[K"), record.getMessage()))

    handler = Handler()
    run = console.RunConsole(100, band=(0.45, 0.55), stream=out, handler=handler)
    logger = logging.getLogger("absl")
    logger.addHandler(handler)
    try:
        for t in range(1, 51):
            run.iteration(t)
        with caplog.at_level("INFO"):
            run.status(50, {"br_avg": 0.5, "d_loss": 1.0}, scores={"cfd": 3.0})
        run.close()
    finally:
        logger.removeHandler(handler)
    assert records == [(True, "t=50/100 | d 1 | br 0.5 [0.45,0.55] | cfd 3")]
    assert handler.filters == [] and out.getvalue().endswith("\n")
    quiet = console.RunConsole(10, bar=False, stream=Terminal(), handler=logging.Handler())
    quiet.iteration(5)
    assert quiet.bar.stream.getvalue() == ""


SCALARS = {"d_loss": 0.8123, "g_loss": 1.234, "br": -4.57, "br_avg": 0.3147,
           "br_skipped": 0, "d_fake": 1.53, "d_real": 2.48, "density_d": 0.35,
           "density_g": 0.2, "flops_normalized_d": 0.33, "flops_normalized_total": 0.25,
           "iterations_per_sec": 12.34, "itop_d": 0.2, "flip_rate_g": 0.0}


def test_status_line_has_the_few_numbers_that_matter():
    line = console.status_line(1200, 2500, SCALARS, band=(0.45, 0.55), scores={"cfd": 12.345})
    assert line == ("t=1200/2500 | d 0.812 g 1.23 | br 0.315 [0.45,0.55] | density G 0.20 "
                    "D 0.35 | cfd 12.3 | 12.3 it/s")
    bare = console.status_line(5, 10, {"d_loss": float("nan")})
    assert bare == "t=5/10 | d nan"


SUMMARY = {
    "method": "adapt_relax", "strategy": "balance", "iterations": 2500,
    "density_g": 0.19999, "density_d": 0.35001, "br_avg": 0.0884, "br_skipped": 0,
    "band": {"mode": "calibrated", "lower": 0.0512, "upper": 0.0934, "used": True, "t": 500},
    "flops_mode": "reference",
    "flops_normalized": {"g": 0.1324, "d": 0.3271, "total": 0.2525},
    "d_decisions": [{"t": t, "action": "decrease"} for t in range(250, 2500, 250)],
    "eval": {"name": "cfd", "best": 41.7, "best_iteration": 2000,
             "history": [[t, {"cfd": 100.0 - t / 50}] for t in range(500, 2501, 500)]},
    "sparsity": {"g": {"flip_history": [[t, 0.1] for t in range(100, 2500, 100)]}},
    "seconds_this_process": 263.0, "workdir": "/home/me/runs/biggan_tiny",
}


def test_final_table_is_compact_and_says_where_things_are():
    table = console.final_table(SUMMARY)
    lines = table.splitlines()
    assert len(lines) <= 12 and max(map(len, lines)) < 120
    assert len(table) < len(repr(SUMMARY)) / 2
    for fragment in ("adapt_relax (balance), 2500 iterations", "best cfd", "41.7 at iteration 2000",
                     "final cfd", "50 at iteration 2500", "G 0.200  D 0.350",
                     "0.0884  (calibrated band [0.0512, 0.0934])",
                     "0.253 of dense (G 0.132, D 0.327; reference)",
                     "4:23", "/home/me/runs/biggan_tiny/", "samples.png",
                     "tensorboard --logdir /home/me/runs/biggan_tiny"):
        assert fragment in table, fragment


def test_final_table_without_evaluation_or_controller_band():
    summary = {**SUMMARY, "eval": {"name": None, "best": None, "best_iteration": None,
                                   "history": []},
               "band": {"mode": "paper", "lower": 0.45, "upper": 0.55, "used": False}}
    table = console.final_table(summary)
    assert "not evaluated" in table and "0.0884\n" in table  # no band: nothing controlled
    assert "(paper band [0.45, 0.55])" in console.final_table(summary, band=(0.45, 0.55))
