"""Orbax checkpoints of the device train state plus the host state (controller, data position,
FLOPs, history) as JSON, with fallback to an older step when the newest one is damaged."""

from __future__ import annotations

import os
from typing import Any

import jax
import orbax.checkpoint as ocp
from absl import logging


class Checkpointer:
    def __init__(self, directory: str, keep: int = 3):
        self.directory = os.path.abspath(directory)
        options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True)
        self.manager = ocp.CheckpointManager(self.directory, options=options)

    def save(self, step: int, state: Any, host: dict[str, Any]) -> None:
        args = ocp.args.Composite(state=ocp.args.StandardSave(state),
                                  host=ocp.args.JsonSave(host))
        self.manager.save(step, args=args, force=True)

    def wait(self) -> None:
        self.manager.wait_until_finished()

    def steps(self) -> list[int]:
        return sorted(self.manager.all_steps())

    def restore_latest(self, like_state: Any) -> tuple[int, Any, dict] | None:
        """Newest restorable checkpoint as (step, state, host), or None when there is none.

        A checkpoint that fails to load (truncated file, missing item) is named in a warning
        and the next older one is tried; nothing is deleted here.
        """
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like_state)
        for step in reversed(self.steps()):
            args = ocp.args.Composite(state=ocp.args.StandardRestore(abstract),
                                      host=ocp.args.JsonRestore())
            try:
                restored = self.manager.restore(step, args=args)
            except Exception as e:  # orbax raises many types for damaged files
                logging.warning("Checkpoint %s/%d is damaged (%s: %s); trying an older one.",
                                self.directory, step, type(e).__name__, e)
                continue
            return step, restored["state"], dict(restored["host"])
        return None

    def close(self) -> None:
        self.manager.wait_until_finished()
        self.manager.close()
