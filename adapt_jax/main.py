"""Command-line entry: `python -m adapt_jax.main --config=configs/biggan_tiny.py --workdir=DIR`.

Any field can be overridden, e.g. `--config.method=static --config.train.num_iters=200`.
Restarting with the same --workdir resumes from its last complete checkpoint.
"""

from __future__ import annotations

import logging as std_logging
import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", None, "Path to a configs/*.py file.",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory (default: runs/<config name>).")


def _quiet_libraries(record) -> bool:
    """Keep orbax's per-save INFO lines out of the console; warnings still show."""
    return record.levelno >= std_logging.WARNING or "orbax" not in record.pathname


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    logging.get_absl_handler().addFilter(_quiet_libraries)
    config = _CONFIG.value
    if config.train.distributed:
        import jax

        jax.distributed.initialize()
    from adapt_jax import training
    from adapt_jax.validation import ConfigError

    workdir = _WORKDIR.value or os.path.join(
        "runs", os.path.splitext(os.path.basename(flags.FLAGS["config"].config_filename))[0])
    try:
        summary = training.run(config, workdir)
    except (ConfigError, training.NonFiniteError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    if summary is None:  # stopped by SIGTERM/SIGINT: the warning above says how to resume
        return
    logging.info("Finished: %s", summary)
    print(f"Done. Samples, balance plot and summary.json are in {os.path.abspath(workdir)}")


if __name__ == "__main__":
    flags.mark_flags_as_required(["config"])
    app.run(main)
