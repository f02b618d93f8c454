"""Install weight and time to the first training iteration, with and without TensorFlow.

    python benchmarks/install_weight.py [--workspace=/tmp/adapt_jax_install_weight] [--rounds=3]

Three fresh virtual environments, each `pip install` of this checkout:
  library  `pip install .`                                   (the sparse library alone)
  train    `pip install ".[train]"`                          (the trainer, no TensorFlow)
  with_tf  `pip install ".[train]" tensorflow-cpu clu`       (the dependencies before the split)
For each: the bytes under site-packages, and (train, with_tf) the seconds from interpreter
start to the end of the first iteration of configs/biggan_tiny.py, split into imports (the
trainer plus the metric-writer module it writes with: clu's, which imports TensorFlow, or
adapt_jax.training.writers) and Trainer construction + iteration 1 (mostly compilation). Rounds are
interleaved; medians are reported. Needs network access to PyPI and ~4 GB of disk.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import _bench  # noqa: E402

VARIANTS = {
    "library": ["."],
    "train": [".[train]"],
    "with_tf": [".[train]", "tensorflow-cpu>=2.16", "clu>=0.0.12"],
}
WRITER_IMPORT = {"train": "from adapt_jax import writers",
                 "with_tf": "from clu import metric_writers"}

# Runs inside a venv, from an empty directory: phase times since interpreter start.
_FIRST_ITERATION = """
import json, sys, time
t0 = time.perf_counter()
import importlib.util, tempfile
import jax
from adapt_jax import training
{writer_import}
t_import = time.perf_counter()
spec = importlib.util.spec_from_file_location("cfg", {config!r})
cfg = importlib.util.module_from_spec(spec); spec.loader.exec_module(cfg)
c = cfg.get_config()
trainer = training.Trainer(c, tempfile.mkdtemp())
jax.block_until_ready(trainer.iteration())
t_first = time.perf_counter()
print(json.dumps({{"imports_s": t_import - t0, "first_iteration_s": t_first - t_import,
                  "tensorflow_imported": "tensorflow" in sys.modules}}))
"""


def site_packages_bytes(venv: pathlib.Path) -> int:
    (site,) = venv.glob("lib/python*/site-packages")
    return sum(f.stat().st_size for f in site.rglob("*") if f.is_file() and not f.is_symlink())


def make_venv(venv: pathlib.Path, requirements: list[str]) -> float:
    """Fresh venv with `requirements` installed from this checkout; returns pip's seconds."""
    if venv.exists():
        shutil.rmtree(venv)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    start = time.perf_counter()
    subprocess.run([*pip, *requirements], check=True, cwd=_bench.ROOT)
    return time.perf_counter() - start


def first_iteration(venv: pathlib.Path, variant: str) -> dict:
    code = _FIRST_ITERATION.format(writer_import=WRITER_IMPORT[variant],
                                   config=str(_bench.ROOT / "configs" / "biggan_tiny.py"))
    start = time.perf_counter()
    out = subprocess.run([str(venv / "bin" / "python"), "-c", code], check=True,
                         capture_output=True, text=True, cwd=tempfile.mkdtemp(),
                         env={**os.environ, "JAX_PLATFORMS": "cpu"})
    result = json.loads(out.stdout.strip().splitlines()[-1])
    return {**result, "process_s": time.perf_counter() - start}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workspace", default=os.path.join(tempfile.gettempdir(),
                                                            "adapt_jax_install_weight"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="keep the venvs afterwards")
    args = parser.parse_args()
    workspace = pathlib.Path(args.workspace)
    load = _bench.LoadSampler()
    rows = {}
    for variant, requirements in VARIANTS.items():
        venv = workspace / variant
        pip_s = make_venv(venv, requirements)
        rows[variant] = {"requirements": requirements, "pip_install_s": pip_s,
                         "site_packages_mb": site_packages_bytes(venv) / 2**20}
        print(f"{variant}: {rows[variant]['site_packages_mb']:.0f} MiB, pip {pip_s:.0f} s",
              flush=True)
    timed = [v for v in VARIANTS if v in WRITER_IMPORT]
    samples: dict[str, list[dict]] = {v: [] for v in timed}
    for _ in range(args.rounds):
        for variant in timed:
            samples[variant].append(first_iteration(workspace / variant, variant))
            print(variant, samples[variant][-1], flush=True)
    for variant in timed:
        s = samples[variant]
        rows[variant].update(
            {k: _bench.median([x[k] for x in s])
             for k in ("imports_s", "first_iteration_s", "process_s")},
            tensorflow_imported=s[0]["tensorflow_imported"], samples=s)
    result = {"benchmark": "install_weight", "environment": _bench.environment(),
              "rounds": args.rounds, "load_average": load.stop(), "variants": rows}
    _bench.write("install_weight", result)
    print(_bench.table(
        [{"variant": k, **v} for k, v in rows.items()],
        [("variant", "variant", "s"), ("site_packages_mb", "site-packages MiB", ".0f"),
         ("imports_s", "imports s", ".1f"), ("first_iteration_s", "first iteration s", ".1f"),
         ("process_s", "process s", ".1f")]))
    if not args.keep:
        shutil.rmtree(workspace)


if __name__ == "__main__":
    main()
