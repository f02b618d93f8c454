"""Read a finished (or running) workdir without building a trainer: its config and generator.

Sampling and export need only the EMA generator, so they restore the checkpoint as stored
(no data source, no optimizer), replicated over the current devices whatever device count
saved it, and rebuild the model from config.json. A damaged newest step is skipped for the
previous one, as training does (but left in place: a run may still be writing there).
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

import ml_collections

from adapt_jax import models
from adapt_jax.training.checkpoint import Checkpointer


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


def absolute(path: str) -> str:
    """A CLI path as given by a user: relative to the cwd, `~` expanded (orbax needs absolute)."""
    return os.path.abspath(os.path.expanduser(path))


def output_path(out: str) -> str:
    """`--out` made absolute; its directory must exist (a typo should not create a tree)."""
    path = absolute(out)
    parent = os.path.dirname(path)
    if not os.path.isdir(parent):
        raise FileNotFoundError(f"--out={out}: directory {parent} does not exist; create it "
                                "or choose another --out.")
    return path


def load_config(workdir: str) -> ml_collections.ConfigDict:
    path = os.path.join(absolute(workdir), "config.json")
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
    workdir = absolute(workdir)
    config = load_config(workdir)
    directory, step = _checkpoint_dir(workdir, checkpoint)
    if not os.path.isdir(directory) or not any(n.isdigit() for n in os.listdir(directory)):
        if checkpoint == "best":
            raise FileNotFoundError(
                f"{workdir} has no best checkpoint yet: one is saved at each evaluation that "
                "improves the score (every eval.every iterations and at the end); use "
                "--checkpoint=latest.")
        raise FileNotFoundError(
            f"{workdir} has no checkpoint yet: the run saves one every train.ckpt_every "
            "iterations and at its end; wait for the first one.")
    ckpt = Checkpointer(directory, create=False)
    try:
        step, state, _ = ckpt.read(step)
    finally:
        ckpt.manager.close()
    g = state["g"]
    return GeneratorSnapshot(config=config, step=step, params=state["ema_params"],
                             stats=dict(g["stats"]), masks=g["masks"])
