"""JAX's persistent compilation cache, on by default for training runs.

A run compiles a few hundred executables: the train steps, and many small ones (initialisation,
mask updates, checkpointing) that JAX's default 1 s threshold would leave out. Started again
(a resume after a preemption, the next run of a sweep, a second run of the same config) it loads
them from disk instead (a 25-iteration run of configs/biggan_tiny.py on 2 CPU cores: 88 s
the first time, 30 s the next, identical results; a full model's steps can take minutes to
compile). The directory grows with every distinct config (a few MB per tiny model); JAX
evicts nothing unless `filelock` is installed and `jax_compilation_cache_max_size` is set.
Deleting it is safe.
"""

from __future__ import annotations

import os

import jax
from absl import logging


def enable(directory: str) -> str | None:
    """Cache compiled executables in `directory` ('' = no cache); returns the directory in use.

    JAX's own setting (`JAX_COMPILATION_CACHE_DIR` or `jax_compilation_cache_dir`) wins, with its
    thresholds as the user set them. The cache only saves time, so a directory that cannot be
    created is a warning, not an error.
    """
    current = jax.config.jax_compilation_cache_dir
    if current:
        return current
    if not directory:
        return None
    path = os.path.abspath(os.path.expanduser(directory))
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as e:
        logging.warning("No compilation cache (%s: %s); set --config.train.compilation_cache to "
                        "a writable directory, or '' to silence this.", type(e).__name__, e)
        return None
    jax.config.update("jax_compilation_cache_dir", path)
    if "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS" not in os.environ:
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    logging.info("Compilation cache: %s", path)
    return path
