"""Orbax checkpoints of the device train state plus the host state (controller, data position,
FLOPs, history) as JSON, with fallback to an older step when the newest one is damaged."""

from __future__ import annotations

import os
import shutil
from typing import Any

import jax
import orbax.checkpoint as ocp
from absl import logging


class Checkpointer:
    def __init__(self, directory: str, keep: int = 3):
        self.directory = os.path.abspath(directory)
        # Damaged steps are moved here (never deleted), so a resumed run can save that step
        # again (orbax refuses to overwrite an existing step) and a person can still look at it.
        self.quarantine = self.directory.rstrip(os.sep) + "_damaged"
        self._options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True)
        self.manager = ocp.CheckpointManager(self.directory, options=self._options)

    def save(self, step: int, state: Any, host: dict[str, Any]) -> None:
        if step in self.manager.all_steps():
            # Left by the same run before it was interrupted and resumed from an earlier step
            # (a best checkpoint written after the last regular one, say): the resumed run
            # recomputes that step exactly, and orbax refuses to save over it.
            logging.info("Replacing checkpoint %s/%d of the interrupted run.", self.directory,
                         step)
            self.manager.wait_until_finished()
            self.manager.delete(step)
        args = ocp.args.Composite(state=ocp.args.StandardSave(state),
                                  host=ocp.args.JsonSave(host))
        self.manager.save(step, args=args, force=True)

    def wait(self) -> None:
        self.manager.wait_until_finished()

    def steps(self) -> list[int]:
        return sorted(self.manager.all_steps())

    def restore_latest(self, like_state: Any) -> tuple[int, Any, dict] | None:
        """Newest restorable checkpoint as (step, state, host), or None when there is none.

        A checkpoint that fails to load (truncated file, missing item) is named in a warning,
        moved to `<directory>_damaged/`, and the next older one is tried; nothing is deleted.
        """
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like_state)
        damaged = []
        result = None
        for step in reversed(self.steps()):
            args = ocp.args.Composite(state=ocp.args.StandardRestore(abstract),
                                      host=ocp.args.JsonRestore())
            try:
                restored = self.manager.restore(step, args=args)
            except Exception as e:  # orbax raises many types for damaged files
                logging.warning("Checkpoint %s/%d is damaged (%s: %s); moving it to %s and "
                                "trying an older one.", self.directory, step,
                                type(e).__name__, e, self.quarantine)
                damaged.append(step)
                continue
            result = step, restored["state"], dict(restored["host"])
            break
        if damaged:
            self._quarantine(damaged)
        return result

    def _quarantine(self, steps: list[int]) -> None:
        """Move damaged step folders aside and reopen the manager so it forgets them."""
        self.manager.close()
        os.makedirs(self.quarantine, exist_ok=True)
        for step in steps:
            src = os.path.join(self.directory, str(step))
            dst = os.path.join(self.quarantine, str(step))
            suffix = 0
            while os.path.exists(dst):  # the same step damaged twice: keep both
                suffix += 1
                dst = os.path.join(self.quarantine, f"{step}.{suffix}")
            shutil.move(src, dst)
        self.manager = ocp.CheckpointManager(self.directory, options=self._options)

    def close(self) -> None:
        self.manager.wait_until_finished()
        self.manager.close()
