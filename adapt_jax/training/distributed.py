"""Joining a multi-process run (TPU pod slices, multi-node GPU, several CPU processes).

`config.train.distributed=True` calls `jax.distributed.initialize` before anything else touches
JAX. The coordinator address, process count and process id come from `config.train` when set;
unset, JAX detects them itself (Cloud TPU pods, SLURM, Open MPI). CPU processes talk through
gloo collectives, which this selects when no other CPU implementation is configured.

These fields describe where a run executes, not what it computes, so a resumed run may change
them (e.g. resume a pod run on a single host).
"""

from __future__ import annotations

import jax
import ml_collections
from orbax.checkpoint import multihost

from adapt_jax.config_base import ConfigError

FIELDS = ("coordinator_address", "num_processes", "process_id")
BARRIER_TIMEOUT_S = 1800


def initialize(train: ml_collections.ConfigDict) -> bool:
    """Join the process group when `train.distributed`; returns whether this is a group run.

    Call once per process, before any other JAX call. Raises ConfigError for settings that
    cannot work (one line that names the field).
    """
    if not train.get("distributed", False):
        return False
    if jax.distributed.is_initialized():
        return True
    kwargs = {k: train.get(k) for k in FIELDS if train.get(k) is not None}
    _check(kwargs)
    if jax.config.jax_cpu_collectives_implementation is None:
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    try:
        jax.distributed.initialize(**kwargs)
    except ValueError as e:  # nothing to auto-detect on this machine
        raise ConfigError(
            f"config.train.distributed=True but JAX could not find the other processes ({e}). "
            "Set config.train.coordinator_address (host:port of process 0), "
            "config.train.num_processes and config.train.process_id, or run where JAX detects "
            "them (Cloud TPU pod slices, SLURM).") from None
    return True


def wait_for_all_processes(name: str) -> None:
    """Block until every process reaches `name` (a no-op in a single-process run).

    CPU (gloo) collectives give a peer only 30 s to join the first collective, and processes
    that build model and data at different speeds (a loaded machine) can be further apart than
    that. The coordination service's barrier waits up to BARRIER_TIMEOUT_S.
    """
    if jax.process_count() > 1:
        multihost.sync_global_processes(name, timeout=BARRIER_TIMEOUT_S,
                                        processes=set(range(jax.process_count())))


def _check(kwargs: dict) -> None:
    n, i = kwargs.get("num_processes"), kwargs.get("process_id")
    if n is not None and n < 1:
        raise ConfigError(f"config.train.num_processes={n} must be >= 1.")
    if i is not None and (i < 0 or (n is not None and i >= n)):
        raise ConfigError(f"config.train.process_id={i} must be in [0, num_processes="
                          f"{n if n is not None else '?'}).")
    address = kwargs.get("coordinator_address")
    if address is not None and ":" not in address:
        raise ConfigError(f"config.train.coordinator_address={address!r} needs a port, "
                          f"e.g. '{address}:1234'.")


def is_main_process() -> bool:
    """Process 0 writes files, logs and decides for everyone."""
    return jax.process_index() == 0
