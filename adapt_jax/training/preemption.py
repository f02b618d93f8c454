"""When to stop early: preemption notices and Ctrl-C, agreed on by every process.

A single process stops after the iteration in which it got SIGTERM (a preemption notice) or
SIGINT (Ctrl-C), writes a checkpoint and exits 0; the same command resumes.

With several processes a per-process flag is wrong: one host would stop and checkpoint while
the others block in the next collective. JAX's distributed runtime already watches SIGTERM and
agrees on a step every process reaches (`multihost_utils.reached_preemption_sync_point`), so
there the signal handler stays JAX's and the decision is JAX's; Ctrl-C on any host is passed on
to it as a preemption notice.
"""

from __future__ import annotations

import os
import signal
import threading

from absl import logging
from jax._src import distributed as _distributed  # the preemption sync manager's owner
from jax.experimental import multihost_utils


def _sync_manager_active() -> bool:
    """JAX's preemption sync manager runs (distributed init with the preemption service)."""
    state = _distributed.global_state
    return state.client is not None and state.preemption_sync_manager is not None


class StopRequest:
    """Call `should_stop(t)` after every iteration t, on every process; `restore()` at the end."""

    def __init__(self) -> None:
        self._requested = False
        self._old: dict[int, object] = {}
        self.synced = _sync_manager_active()
        if threading.current_thread() is not threading.main_thread():
            return  # signal handlers can only be installed from the main thread
        if self.synced:
            # SIGTERM belongs to JAX's preemption notifier; installing a Python handler would
            # replace it. Ctrl-C becomes the same notice, so every host stops together.
            self._install(signal.SIGINT, self._forward_as_sigterm)
        elif _distributed.global_state.client is not None:
            logging.warning("JAX's preemption service is off (jax_enable_preemption_service): "
                            "a preempted process will not stop in step with the others.")
        else:
            self._install(signal.SIGTERM, self._handle)
            self._install(signal.SIGINT, self._handle)

    def _install(self, signum: int, handler) -> None:
        self._old[signum] = signal.signal(signum, handler)

    def _handle(self, signum, frame) -> None:
        self._requested = True

    def _forward_as_sigterm(self, signum, frame) -> None:
        os.kill(os.getpid(), signal.SIGTERM)

    @property
    def requested(self) -> bool:
        """A signal arrived in this process (single-process mode only)."""
        return self._requested

    def should_stop(self, t: int) -> bool:
        """Whether to checkpoint and exit after iteration `t`; the same answer on every
        process (all processes must call this at every iteration, starting from the same t)."""
        if self.synced:
            return bool(multihost_utils.reached_preemption_sync_point(t))
        return self._requested

    def restore(self) -> None:
        """Give the signals back to their previous handlers."""
        for signum, handler in self._old.items():
            signal.signal(signum, handler)
        self._old = {}
