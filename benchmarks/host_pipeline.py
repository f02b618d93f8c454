"""Host time per training batch, per data source, with and without the prefetch thread.

For each source (digits in memory, a folder of JPEGs resized like STL-10, TFDS's mock CIFAR-10
read through `tfds.data_source`) this measures
  prepare_ms   `BatchIterator.batch(p)`: read + decode + resize + flip + scale, one batch
  wait_ms_0    what the training loop waits in `next()` without prefetch (= prepare)
  wait_ms_2    what it waits with `prefetch=2` while a simulated device step of --step_ms runs
A wait_ms_2 near zero means the host keeps up with a device that needs --step_ms per batch.

Usage: python benchmarks/host_pipeline.py [--batch 64] [--resolution 32] [--batches 30]
         [--step_ms 50] [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import pathlib
import tempfile
import time

import _bench
import numpy as np
from PIL import Image

from adapt_jax import data
from adapt_jax.config_base import get_base_config


def _folder(root: pathlib.Path, n: int, size: int) -> pathlib.Path:
    """n random JPEGs of size x size (96 = STL-10's size) in two class folders."""
    rng = np.random.default_rng(0)
    for i in range(n):
        d = root / f"class{i % 2}"
        d.mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 256, (size, size, 3), np.uint8)
        Image.fromarray(pixels).save(d / f"{i:05d}.jpg", quality=90)
    return root


@contextlib.contextmanager
def _sources(resolution: int, n: int):
    """(name, source) pairs; the TFDS mock and the folder live only inside this block."""
    cfg = get_base_config().data
    out = [("digits", data.make_source(cfg, resolution, 10))]
    with tempfile.TemporaryDirectory() as tmp:
        folder = _folder(pathlib.Path(tmp) / "images", n, 96)
        folder_cfg = _cfg(cfg, source="folder", path=str(folder))
        out.append(("folder (96px jpeg)", data.make_source(folder_cfg, resolution, 2)))
        try:
            import tensorflow_datasets as tfds

            mock = tfds.testing.mock_data(num_examples=n)
        except ImportError:
            mock = None
        if mock is None:
            yield out
            return
        with mock:
            tfds_cfg = _cfg(cfg, source="tfds", name="cifar10", split="train",
                            data_dir=str(pathlib.Path(tmp) / "tfds"))
            out.append(("tfds mock cifar10", data.make_source(tfds_cfg, resolution, 10)))
            yield out


def _cfg(base, **fields):
    cfg = base.copy_and_resolve_references()
    cfg.update(fields)
    return cfg


def measure(source, batch: int, batches: int, step_s: float) -> dict[str, float]:
    plain = data.BatchIterator(source, batch, seed=0, flip=True, prefetch=0)
    prepare = []
    for p in range(batches):
        start = time.perf_counter()
        plain.batch(p)
        prepare.append(time.perf_counter() - start)
    ahead = data.BatchIterator(source, batch, seed=0, flip=True, prefetch=2)
    ahead.next()  # the thread starts with the first request
    waits = []
    for _ in range(batches):
        time.sleep(step_s)  # the device working on the previous batch
        start = time.perf_counter()
        ahead.next()
        waits.append(time.perf_counter() - start)
    ahead.close()
    ms = 1e3
    return {"prepare_ms": ms * _bench.median(prepare), "wait_ms_0": ms * _bench.median(prepare),
            "wait_ms_2": ms * _bench.median(waits)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--resolution", type=int, default=32)
    parser.add_argument("--batches", type=int, default=30)
    parser.add_argument("--examples", type=int, default=512, help="folder / TFDS mock size")
    parser.add_argument("--step_ms", type=float, default=50.0)
    parser.add_argument("--quick", action="store_true", help="8 batches of 16, 64 examples")
    args = parser.parse_args()
    if args.quick:
        args.batch, args.batches, args.examples = 16, 8, 64
    env = _bench.environment()
    load = _bench.LoadSampler()
    rows = []
    with _sources(args.resolution, args.examples) as sources:
        for name, source in sources:
            row = {"source": name, **measure(source, args.batch, args.batches,
                                             args.step_ms / 1e3)}
            rows.append(row)
            print(f"{name}: {row}", flush=True)
    print(_bench.table(rows, [("source", "source", "s"), ("prepare_ms", "prepare ms", ".2f"),
                              ("wait_ms_0", "wait ms (no prefetch)", ".2f"),
                              ("wait_ms_2", "wait ms (prefetch 2)", ".2f")]))
    _bench.write("host_pipeline", {"environment": env, "load_average": load.stop(),
                                   "args": vars(args), "rows": rows})


if __name__ == "__main__":
    main()
