"""One run per workdir: a second command on the same workdir refuses to start.

Starting the same command twice (by hand, or a scheduler retrying too early) would otherwise
run both: the second resumes from the first's last checkpoint while the first keeps writing the
same steps, events and summary.

Local (and NFS) workdirs: `fcntl.flock` on `<workdir>/run.lock`. The kernel drops the lock when
the holding process dies however it dies, so a crashed or killed run never leaves it stuck;
the file only names the holder (host, pid, start time) for the message.

Object-store workdirs (`gs://`) have no locks: the holder writes a lease (`run.lock` with a
heartbeat time) and renews it through `refresh()`; a lease older than `ttl` seconds belongs to
a dead run. This is best effort (two starts within the same second can both win).

Only process 0 of a multi-process run takes the lock: it is the one run, not one per host.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time

from adapt_jax import paths
from adapt_jax.config_base import ConfigError

LOCK_NAME = "run.lock"
LEASE_TTL = 600.0  # seconds without a heartbeat after which a gs:// lease is taken over


class WorkdirBusy(ConfigError):
    """Another live run holds the workdir (printed as one line by the CLI)."""


def _holder() -> dict:
    return {"host": socket.gethostname(), "pid": os.getpid(), "started": time.time()}


def _describe(holder: dict) -> str:
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(holder.get("started", 0)))
    return f"host {holder.get('host')}, pid {holder.get('pid')}, started {started}"


class WorkdirLock:
    """Exclusive hold of one workdir; use as a context manager around the whole run."""

    def __init__(self, workdir: str, ttl: float = LEASE_TTL):
        self.workdir = paths.resolve(workdir)
        self.path = paths.join(self.workdir, LOCK_NAME)
        self.ttl = ttl
        self.holder = _holder()
        self._fd: int | None = None
        self._renewed = 0.0
        self.held = False

    def acquire(self) -> WorkdirLock:
        paths.makedirs(self.workdir)
        if paths.is_url(self.path):
            self._take_lease()
        else:
            self._flock()
        self.held = True
        return self

    def _busy(self, holder: dict) -> WorkdirBusy:
        return WorkdirBusy(f"--workdir={self.workdir} is in use by another run "
                           f"({_describe(holder)}); wait for it to end or stop it, "
                           "or use another --workdir.")

    def _flock(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                holder = json.loads(os.read(fd, 4096) or b"{}")
            except ValueError:  # the holder is between truncate and write
                holder = {}
            os.close(fd)
            raise self._busy(holder) from None
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps(self.holder).encode())
        os.fsync(fd)
        self._fd = fd

    def _take_lease(self) -> None:
        if paths.exists(self.path):
            lease = paths.read_json(self.path)
            if time.time() - lease.get("heartbeat", 0.0) < self.ttl:
                raise self._busy(lease)
        self._write_lease()
        lease = paths.read_json(self.path)
        if {k: lease.get(k) for k in self.holder} != self.holder:  # another start won
            raise self._busy(lease)

    def _write_lease(self) -> None:
        self._renewed = time.time()
        paths.write_json(self.path, {**self.holder, "heartbeat": self._renewed})

    def refresh(self) -> None:
        """Renew a gs:// lease when a quarter of its ttl has passed (cheap to call often)."""
        if self.held and self._fd is None and time.time() - self._renewed > self.ttl / 4:
            self._write_lease()

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
        elif self.held:
            paths.write_json(self.path, {**self.holder, "heartbeat": 0.0, "released": True})
        self.held = False

    def __enter__(self) -> WorkdirLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


class _NoLock:
    """What processes other than 0 hold: nothing."""

    held = False

    def refresh(self) -> None:
        pass

    def release(self) -> None:
        pass

    def __enter__(self) -> _NoLock:
        return self

    def __exit__(self, *exc) -> None:
        pass


def hold(workdir: str, process_index: int | None = None) -> WorkdirLock | _NoLock:
    """The workdir's lock for this process (process 0), or a no-op (every other process)."""
    if process_index is None:
        import jax

        process_index = jax.process_index()
    return WorkdirLock(workdir) if process_index == 0 else _NoLock()
