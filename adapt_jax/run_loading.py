"""Read a finished (or running) workdir without building a trainer: its config and generator.

Sampling and export need only the EMA generator, so they restore the checkpoint as stored
(no target tree, no data source, no optimizer) and rebuild the model from config.json.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

import ml_collections
import orbax.checkpoint as ocp

from adapt_jax import models


@dataclasses.dataclass
class GeneratorSnapshot:
    """The EMA generator of one checkpoint, with what is needed to run it."""

    config: ml_collections.ConfigDict
    step: int
    params: Any  # EMA params (exactly sparse)
    stats: dict  # G's non-param collections (BN running stats, SN vectors)
    masks: Any

    @property
    def model(self):
        return models.create(self.config.model)


def load_config(workdir: str) -> ml_collections.ConfigDict:
    path = os.path.join(workdir, "config.json")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} not found: --workdir must be a directory written by "
                                "`python -m adapt_jax.main`.")
    with open(path) as f:
        return ml_collections.ConfigDict(json.load(f))


def _checkpoint_dir(workdir: str, which: str) -> tuple[str, int | None]:
    """'latest' | 'best' | a step number → (directory, step or None for newest)."""
    if which == "best":
        return os.path.join(workdir, "checkpoints_best"), None
    if which == "latest":
        return os.path.join(workdir, "checkpoints"), None
    if not which.isdigit():
        raise ValueError(f"--checkpoint={which!r}: use 'latest', 'best' or a step number.")
    return os.path.join(workdir, "checkpoints"), int(which)


def load_generator(workdir: str, checkpoint: str = "latest") -> GeneratorSnapshot:
    config = load_config(workdir)
    directory, step = _checkpoint_dir(workdir, checkpoint)
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"No checkpoints in {directory} (--checkpoint={checkpoint}).")
    mngr = ocp.CheckpointManager(directory)
    steps = sorted(mngr.all_steps())
    if not steps or (step is not None and step not in steps):
        raise FileNotFoundError(f"Checkpoint {checkpoint} not in {directory}; have {steps}.")
    step = steps[-1] if step is None else step
    args = ocp.args.Composite(state=ocp.args.StandardRestore())
    state = mngr.restore(step, args=args)["state"]
    mngr.close()
    g = state["g"]
    return GeneratorSnapshot(config=config, step=step, params=state["ema_params"],
                             stats=dict(g["stats"]), masks=g["masks"])
