"""Orbax checkpoints of the device train state plus the host state (controller, data position,
FLOPs, history) as JSON.

What restoring and saving guarantee:
- Only real damage (unreadable, truncated or missing files, a failed digest) makes a step be
  skipped; it is moved to `<directory>_damaged/` (never deleted) and the next older one is tried.
- A stored tree whose structure, shapes or dtypes differ from the current state's was written by
  another config or code version: `ConfigError` naming the first difference; nothing is moved.
- Every step carries a digest of its arrays (`adapt_jax.training.digest`), checked after restoring.
- Restored arrays take the target's shardings (the current mesh), so a run saved on N devices
  resumes, samples and exports on any other device count.
- A save that fails for lack of space or permission raises `StorageError`: one line, no traceback.
"""

from __future__ import annotations

import contextlib
import logging as std_logging
import os
import tempfile
from collections.abc import Iterator
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from absl import logging
from jax.experimental import multihost_utils
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from adapt_jax import paths
from adapt_jax.config_base import ConfigError
from adapt_jax.training import digest

DIGEST_KEY = "_digest"  # host JSON entry: {leaf path: digest} of the state saved with it
# Messages of OS and tensorstore errors that mean "cannot write here" rather than a bug.
_OS_REASONS = ("No space left on device", "Disk quota exceeded", "Read-only file system",
               "Permission denied", "Not a directory")
_STORAGE_SIGNS = ("RESOURCE_EXHAUSTED", "PERMISSION_DENIED", *_OS_REASONS)


class StorageError(ConfigError):
    """A checkpoint could not be written (disk full, read-only or unwritable directory).

    A ConfigError so every CLI prints it as one `error:` line: the fix is the user's (free space,
    a writable --workdir), and the checkpoints already written are intact.
    """


class DamagedCheckpoint(RuntimeError):
    """A step that cannot be read back as saved (truncated or missing files, a failed digest)."""


def _brief(e: BaseException) -> str:
    """An exception as one short line (tensorstore appends its whole JSON spec)."""
    text = str(e).split(" [tensorstore_spec=")[0].strip()
    text = text.splitlines()[0] if text else ""
    return f"{type(e).__name__}: {text[:400]}"


class _NoOrbaxTracebacks(std_logging.Filter):
    """Orbax logs the error of a failed background save with its traceback before we raise it
    (as StorageError, or unchanged): keep its line, drop the duplicate traceback."""

    def filter(self, record: std_logging.LogRecord) -> bool:
        if record.exc_info and "orbax" in record.pathname:
            record.exc_info, record.exc_text = None, None
        return True


_ABSL_LOGGER = std_logging.getLogger("absl")
if not any(isinstance(f, _NoOrbaxTracebacks) for f in _ABSL_LOGGER.filters):
    _ABSL_LOGGER.addFilter(_NoOrbaxTracebacks())


def _chain(e: BaseException | None) -> Iterator[BaseException]:
    while e is not None:
        yield e
        e = e.__cause__ or e.__context__


def _storage_failure(e: BaseException) -> bool:
    return any(isinstance(x, OSError) or any(s in str(x) for s in _STORAGE_SIGNS)
               for x in _chain(e))


def _storage_reason(e: BaseException) -> str:
    """The OS's words when an error carries them ('No space left on device'), else the error."""
    for x in _chain(e):
        for reason in _OS_REASONS:
            if reason in str(x):
                return reason
    return _brief(e)


def _shapes(tree: Any) -> dict[str, tuple[tuple, str]]:
    """{leaf path: (shape, dtype name)} in orbax's storage layout."""
    return {k: (tuple(x.shape), np.dtype(x.dtype).name)
            for k, x in digest.flat_leaves(tree).items()}


def tree_difference(stored: Any, target: Any) -> str | None:
    """The first difference between a stored tree's metadata and a target tree, in words."""
    a, b = _shapes(stored), _shapes(target)
    only_stored, only_target = sorted(set(a) - set(b)), sorted(set(b) - set(a))
    changed = sorted(k for k in set(a) & set(b) if a[k] != b[k])
    if changed:
        k = changed[0]
        first = (f"{k} is {a[k][0]} {a[k][1]} there but {b[k][0]} {b[k][1]} in this config's "
                 "state")
    elif only_stored:
        first = f"{only_stored[0]} is there but not in this config's state"
    elif only_target:
        first = f"{only_target[0]} is in this config's state but not there"
    else:
        return None
    others = len(changed) + len(only_stored) + len(only_target) - 1
    return first + (f" ({others} more leaves differ)" if others else "")


def replicated_target(stored: Any) -> Any:
    """Abstract arrays of a stored tree, replicated over every current device."""
    mesh = jax.make_mesh((jax.device_count(),), ("data",),
                         axis_types=(jax.sharding.AxisType.Auto,))
    sharding = NamedSharding(mesh, P())
    return jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=sharding),
                        stored)


class Checkpointer:
    def __init__(self, directory: str, keep: int = 3, create: bool = True):
        self.directory = paths.resolve(directory)  # local (absolute) or gs://
        # Damaged steps are moved here (never deleted), so a resumed run can save that step
        # again (orbax refuses to overwrite an existing step) and a person can still look at it.
        self.quarantine = self.directory.rstrip(os.sep) + "_damaged"
        self._options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=create)
        self._best_score: float | None = None  # of the stored best step (save_best), cached
        self._pending: int | None = None  # step of the async save in flight
        with self._writing("the checkpoint directory"):
            self.manager = self._open()

    def _open(self) -> ocp.CheckpointManager:
        handlers = {"state": ocp.StandardCheckpointHandler(), "host": ocp.JsonCheckpointHandler()}
        return ocp.CheckpointManager(self.directory, options=self._options,
                                     item_handlers=handlers)

    @contextlib.contextmanager
    def _writing(self, what: str) -> Iterator[None]:
        """Turn 'cannot write here' failures into StorageError (orbax raises them at save, or
        from its background thread at the next save / wait)."""
        try:
            yield
        except Exception as e:
            if not _storage_failure(e):
                raise
            raise StorageError(
                f"could not write {what} in {self.directory} ({_storage_reason(e)}); "
                "free disk space or use a writable --workdir, then run the same command again "
                "(the checkpoints written before are intact).") from e

    # -- saving ----------------------------------------------------------------------------
    def save(self, step: int, state: Any, host: dict[str, Any]) -> None:
        """Start an async save of `state` and `host` (with the state's digest) as `step`."""
        host = {**host, DIGEST_KEY: digest.tree_digest(state)}
        self.wait()  # orbax waits for the previous save anyway; its failure is named as its own
        with self._writing(f"checkpoint {step}"):
            # Orbax's background threads wait minutes for a step directory that could not be
            # created (a read-only directory) before the process can exit: find out first.
            fd, probe = tempfile.mkstemp(prefix=".write_probe_", dir=self.directory)
            os.close(fd)
            os.remove(probe)
            if step in self.manager.all_steps():
                # Left by the same run before it was interrupted and resumed from an earlier
                # step (a best checkpoint written after the last regular one, say): the resumed
                # run recomputes that step exactly, and orbax refuses to save over it.
                logging.info("Replacing checkpoint %s/%d of the interrupted run.",
                             self.directory, step)
                self.manager.wait_until_finished()
                self.manager.delete(step)
            args = ocp.args.Composite(state=ocp.args.StandardSave(state),
                                      host=ocp.args.JsonSave(host))
            self.manager.save(step, args=args, force=True)
        self._pending = step

    def save_best(self, step: int, state: Any, host: dict[str, Any], score: float) -> bool:
        """Save `step` as the best (lower `score` is better) unless the stored best is at least
        as good; returns whether it saved. The stored best may come from an earlier life of the
        run (its regular checkpoints damaged, training restarted): a worse score never replaces
        it. The same step again (a resumed run recomputing it) is replaced."""
        steps = self.steps()
        if self._best_score is None and steps:
            self._best_score = self.stored_score(steps[-1])
        if (self._best_score is not None and step not in steps
                and not score < self._best_score):
            logging.info("Keeping best checkpoint %s/%d (score %g); %g at iteration %d is not "
                         "better.", self.directory, steps[-1], self._best_score, score, step)
            return False
        self.save(step, state, host)
        self._best_score = score
        return True

    def stored_score(self, step: int) -> float | None:
        """The best evaluation score recorded in a step's host JSON (None when unreadable)."""
        try:
            host = self.manager.restore(step, args=ocp.args.Composite(
                host=ocp.args.JsonRestore()))["host"]
            return float(host["eval"]["best"])
        except Exception:  # damaged or without a score: nothing to protect
            return None

    def wait(self) -> None:
        """Until the pending async save is on disk; StorageError if it could not be written."""
        with self._writing(f"checkpoint {self._pending}" if self._pending is not None
                           else "a checkpoint"):
            self.manager.wait_until_finished()
        self._pending = None

    def close(self) -> None:
        self.wait()
        self.manager.close()

    def steps(self) -> list[int]:
        return sorted(self.manager.all_steps())

    # -- restoring -------------------------------------------------------------------------
    def restore_latest(self, like_state: Any) -> tuple[int, Any, dict] | None:
        """Newest intact checkpoint as (step, state, host), or None when there is none.

        `like_state` gives the structure, shapes, dtypes and shardings to restore into. A
        damaged step is named in a warning, moved to `<directory>_damaged/` and the next older
        one is tried; a step of another config raises ConfigError before anything is moved.
        """
        return self._newest(jax.tree.map(ocp.utils.to_shape_dtype_struct, like_state),
                            quarantine=True)

    def read(self, step: int | None = None) -> tuple[int, Any, dict]:
        """A step (default: the newest intact one) as stored, for tools that have no state to
        restore into: plain dicts, replicated over the current devices. Damaged steps are
        skipped with a warning, never moved (a run may still be writing this directory)."""
        steps = self.steps()
        if step is not None:
            if step not in steps:
                raise ConfigError(f"checkpoint {step} is not in {self.directory}; it has "
                                  f"{steps or 'none'}.")
            try:
                return step, *self._restore(step, None)
            except DamagedCheckpoint as e:
                raise ConfigError(f"checkpoint {self.directory}/{step} is damaged ({e}); "
                                  "choose another step.") from None
        result = self._newest(None, quarantine=False)
        if result is None:
            raise ConfigError(f"no intact checkpoint in {self.directory} (damaged: {steps}).")
        return result

    def _newest(self, target: Any, quarantine: bool) -> tuple[int, Any, dict] | None:
        damaged, result = [], None
        for step in reversed(self.steps()):
            try:
                result = step, *self._restore(step, target)
                break
            except DamagedCheckpoint as e:
                logging.warning("Checkpoint %s/%d is damaged (%s); %strying an older one.",
                                self.directory, step, e,
                                f"moving it to {self.quarantine} and " if quarantine else "")
                damaged.append(step)
        if damaged and quarantine:
            self._quarantine(damaged)
        return result

    def _restore(self, step: int, target: Any) -> tuple[Any, dict]:
        """(state, host) of one step; DamagedCheckpoint for unreadable data or a failed digest,
        ConfigError when the stored tree does not fit `target`."""
        try:
            stored = self.manager.item_metadata(step)["state"]
            if stored is None:
                raise ValueError("no readable metadata of the state")
        except Exception as e:  # orbax raises many types for damaged files
            raise DamagedCheckpoint(_brief(e)) from e
        if target is None:
            target = replicated_target(stored)
        else:
            difference = tree_difference(stored, target)
            if difference:
                raise ConfigError(
                    f"{self.directory}/{step} was written by another config or code version: "
                    f"{difference}. Resume with the config that wrote it, or use a new "
                    "--workdir; nothing was changed.")
        args = ocp.args.Composite(state=ocp.args.StandardRestore(target),
                                  host=ocp.args.JsonRestore())
        try:
            restored = self.manager.restore(step, args=args)
            state, host = restored["state"], dict(restored["host"])
        except Exception as e:
            raise DamagedCheckpoint(_brief(e)) from e
        expected = host.pop(DIGEST_KEY, None)
        if expected is not None:  # steps saved before digests existed are taken as they are
            bad = digest.mismatched_leaves(state, expected)
            if bad:
                raise DamagedCheckpoint(f"digest mismatch in {len(bad)} arrays, first {bad[0]}")
        return state, host

    def _quarantine(self, steps: list[int]) -> None:
        """Move damaged step folders aside and reopen the manager so it forgets them."""
        self.manager.close()
        if jax.process_index() == 0:  # a shared directory is moved once, by one process
            paths.makedirs(self.quarantine)
            for step in steps:
                src = paths.join(self.directory, str(step))
                dst = paths.join(self.quarantine, str(step))
                suffix = 0
                while paths.exists(dst):  # the same step damaged twice: keep both
                    suffix += 1
                    dst = paths.join(self.quarantine, f"{step}.{suffix}")
                paths.move(src, dst)
        if jax.process_count() > 1:
            multihost_utils.sync_global_devices("adapt_jax.training.checkpoint.quarantine")
        self.manager = self._open()
