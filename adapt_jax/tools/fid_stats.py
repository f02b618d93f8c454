"""CLI: reference statistics (`.npz` with mu, sigma) of a config's training data.

    python -m adapt_jax.fid_stats --config configs/sngan_cifar10.py \
        --config.eval.inception_path=inception_fid.npz --out fid_stats_cifar10_train.npz

The file goes to `eval.fid_stats_path`. With an empty `eval.inception_path` it holds classifier
(CFD) statistics instead, tagged as such in its `kind` entry, so it can never pass for FID stats.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from absl import app, flags
from ml_collections import config_flags

from adapt_jax.evaluation import evaluator, metrics


def write_source_stats(source: Any, out_path: str, *, inception_path: str, cache_dir: str = "",
                       batch_size: int = 100, num_examples: int | None = None
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Statistics of `num_examples` (default: all, up to 50k) images of `source` -> `out_path`."""
    space = evaluator.feature_space(inception_path, source, cache_dir, batch_size)
    total = int(source.num_examples)
    num = min(total, evaluator.REFERENCE_CAP) if num_examples is None else num_examples
    summary = evaluator.summarize(evaluator.source_batches(source, num, batch_size), space.extract)
    metrics.save_stats(out_path, summary.mu, summary.sigma, space.kind)
    return summary.mu, summary.sigma


def run_cli() -> None:
    """Defines the flags only when run as a program, so importing this module defines none."""
    config_flag = config_flags.DEFINE_config_file("config", None,
                                                  "training config (its data and eval are used)")
    out = flags.DEFINE_string("out", None, "output .npz")
    cache_dir = flags.DEFINE_string("cache_dir", "", "cache for the CFD classifier ('' = none)")
    num = flags.DEFINE_integer("num_examples", None, "images to use (default: all, up to 50k)")
    flags.mark_flags_as_required(["config", "out"])

    def main(argv: list[str]) -> None:
        del argv
        from adapt_jax import data

        c = config_flag.value
        source = data.make_source(c.data, c.model.resolution, c.model.num_classes)
        mu, _ = write_source_stats(source, out.value, inception_path=c.eval.inception_path,
                                   cache_dir=cache_dir.value, batch_size=c.eval.batch_size,
                                   num_examples=num.value)
        print(f"wrote {out.value}: {mu.shape[0]}-d statistics of {source!r}")

    app.run(main)
