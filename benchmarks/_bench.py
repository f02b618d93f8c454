"""Helpers shared by the benchmarks: configs, environment record, load sampling, JSON output.

Timings on a shared CPU machine are noisy. Every benchmark therefore interleaves the variants it
compares (round-robin, one sample of each per round), reports medians, and records the load
average it ran under (sampled through the run, not only at the end).
"""

from __future__ import annotations

import datetime
import importlib.util
import json
import os
import pathlib
import platform
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any

import jax

ROOT = pathlib.Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
CONFIG_FILES = {"tiny": "biggan_tiny.py", "full": "sngan_cifar10.py"}


def load_config(which: str, method: str):
    """The tiny default (configs/biggan_tiny.py) or the paper's SNGAN-CIFAR-10 config with
    `method`. CIFAR-10 is not available offline: the full config reads digits at 32x32 (the
    model and batch sizes, which set the cost, are the paper's)."""
    path = ROOT / "configs" / CONFIG_FILES[which]
    spec = importlib.util.spec_from_file_location(f"_bench_cfg_{which}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if which == "full":
        c = module.get_config(method)
        c.data.source, c.data.flip = "digits", False
    else:
        c = module.get_config()
        c.method = method
        if method == "adapt_strict":
            c.sparse.d_max = 0.5
    return c


def make_trainer(which: str, method: str, **overrides):
    from adapt_jax import training

    c = load_config(which, method)
    for key, value in overrides.items():
        target = c
        *parents, leaf = key.split(".")
        for p in parents:
            target = target[p]
        target[leaf] = value
    return training.Trainer(c, tempfile.mkdtemp(prefix=f"bench_{which}_{method}_"))


def block(tree: Any) -> Any:
    return jax.block_until_ready(tree)


def timed(fn: Callable[[], Any]) -> float:
    """Wall seconds of fn() including the wait for its device results."""
    start = time.perf_counter()
    block(fn())
    return time.perf_counter() - start


def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


class LoadSampler:
    """Samples the 1-minute load average every `every` seconds in a daemon thread."""

    def __init__(self, every: float = 5.0):
        self.samples: list[float] = [os.getloadavg()[0]]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(every,), daemon=True)
        self._thread.start()

    def _run(self, every: float) -> None:
        while not self._stop.wait(every):
            self.samples.append(os.getloadavg()[0])

    def summary(self) -> dict[str, float]:
        s = self.samples + [os.getloadavg()[0]]
        return {"min": min(s), "median": statistics.median(s), "max": max(s),
                "n_samples": len(s)}

    def stop(self) -> dict[str, float]:
        self._stop.set()
        return self.summary()


def environment() -> dict[str, Any]:
    import flax
    import jaxlib

    from adapt_jax.models import cpu_conv

    device = jax.devices()[0]
    return {
        "jax_version": jax.__version__,
        "jaxlib_version": jaxlib.__version__,
        "flax_version": flax.__version__,
        "device": f"{device.platform}: {device.device_kind}",
        "device_count": jax.device_count(),
        "host": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": sys.version.split()[0],
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "conv_impl_default": cpu_conv.resolve_conv_impl("auto"),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "load_average_at_start": list(os.getloadavg()),
    }


def write(name: str, result: dict[str, Any], out: pathlib.Path | None = None) -> pathlib.Path:
    result = {**result, "load_average_at_end": list(os.getloadavg())}
    path = out or RESULTS / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2, default=_jsonable) + "\n")
    print(f"wrote {path}")
    return path


def _jsonable(x: Any) -> Any:
    try:
        return float(x)
    except (TypeError, ValueError):
        return str(x)


def table(rows: list[dict[str, Any]], columns: list[tuple[str, str, str]]) -> str:
    """Plain-text table: columns are (key, header, format)."""
    widths = [max(len(h), 10) for _, h, _ in columns]
    cells = [[("" if r.get(k) is None else format(r[k], f)) for k, _, f in columns]
             for r in rows]
    for row in cells:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    head = "  ".join(h.rjust(w) for (_, h, _), w in zip(columns, widths, strict=True))
    lines = [head, "-" * len(head)]
    lines += ["  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(lines)
