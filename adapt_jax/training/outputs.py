"""What a run leaves for people: sample grids, scores, and at the end samples.png, balance.png,
layer_density.md and summary.json (process 0 writes them)."""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any

import jax
import numpy as np
from absl import logging

from adapt_jax import paths
from adapt_jax.gan.state import EVAL_STREAM, SAMPLE_GRID_STREAM, stream_key
from adapt_jax.models import sampling
from adapt_jax.rundir import RunDir
from adapt_jax.training import report
from adapt_jax.training.trainer import Trainer


@dataclasses.dataclass(frozen=True)
class SampleGrid:
    """The fixed z and labels of the sample grid, so grids over a run are comparable."""

    key: jax.Array
    num: int
    labels: np.ndarray | None

    @classmethod
    def for_run(cls, seed: int, num_classes: int) -> SampleGrid:
        num = 100 if num_classes in (0, 10) else 64
        labels = None if num_classes == 0 else np.arange(num) % num_classes
        return cls(stream_key(seed, SAMPLE_GRID_STREAM), num, labels)

    def image(self, trainer: Trainer) -> np.ndarray:
        return report.image_grid(trainer.sample(self.key, self.num, self.labels), cols=10)


def evaluate(trainer: Trainer, evaluator, t: int) -> tuple[dict[str, float], bool]:
    """Score the EMA generator at iteration t; returns (scores, whether it is the best yet)."""
    key = stream_key(trainer.config.seed, EVAL_STREAM, t)
    batch_index = itertools.count()  # the evaluator asks batch by batch: each must be new z

    num_classes = trainer.components.gan.num_classes

    def generate(n: int) -> tuple[np.ndarray, np.ndarray | None]:
        batch_key = jax.random.fold_in(key, next(batch_index))
        # The labels sampling would draw from this key (batch 0 of the call), made explicit so
        # that the evaluator can score class accuracy; the images are those of labels=None.
        labels = (None if not num_classes else
                  np.asarray(sampling.random_labels(jax.random.fold_in(batch_key, 0), n,
                                                    num_classes)))
        return trainer.sample(batch_key, n, labels), labels

    scores = evaluator.evaluate(generate)
    prune_at = trainer.components.schedule.prune_at
    improved = trainer.host.eval_log.record(t, evaluator.name, scores, prune_at or 0)
    logging.info("t=%d %s: %s", t, evaluator.description, scores)
    return scores, improved


def band_summary(trainer: Trainer) -> dict[str, Any]:
    """The band the controller used and how it was obtained ('used': False without one)."""
    controller = trainer.host.controller
    if controller is None:
        b = trainer.config.balance
        return {"mode": "paper", "lower": b.lower, "upper": b.upper, "used": False}
    band = {**controller.band(), "used": True}
    if "lower" not in band:  # calibrated, but the run ended before its first D check
        band.update(lower=controller.lower, upper=controller.upper)
    return band


def band_path(trainer: Trainer, band: dict[str, Any]) -> list[tuple[int, float, float]]:
    """(t, lower, upper) points of the band over the run, for balance.png."""
    controller = trainer.host.controller
    if controller is not None and controller.reference is not None:
        ts = [0] + [t for t, _ in trainer.host.history["br"]]
        return [(t, *controller.reference.band_at(t)) for t in ts]
    return [(band.get("t", 0), band["lower"], band["upper"])]


def finish(trainer: Trainer, grid: SampleGrid, seconds: float) -> dict[str, Any]:
    """Write the end-of-run files into the workdir; returns the summary."""
    config, host = trainer.config, trainer.host
    rd = RunDir(trainer.workdir)
    image = grid.image(trainer)  # every process samples (a collective); process 0 writes
    band = band_summary(trainer)
    summary = _summary(trainer, band, seconds)
    if jax.process_index() != 0:
        return summary
    report.save_png(rd.samples, image, scale=2)
    report.plot_balance(rd.balance_plot, host.history["br"], band_path(trainer, band),
                        host.history["density_d"],
                        criterion="BR" if config.balance.criterion == "br" else "r_t",
                        band_label=band["mode"])
    paths.write_text(rd.layer_table, host.diagnostics.layer_table())
    report.write_json_atomic(rd.summary, summary)
    return summary


def _summary(trainer: Trainer, band: dict[str, Any], seconds: float) -> dict[str, Any]:
    config, host = trainer.config, trainer.host
    decisions = [] if host.controller is None else [
        dataclasses.asdict(d) for d in host.controller.decisions]
    return {
        "method": config.method,
        "strategy": config.strategy,
        "iterations": host.t,
        "density_g": trainer.density("g"),
        "density_d": trainer.density("d"),
        "br_avg": host.window.value(),
        "br_skipped": host.window.skipped,
        "band": band,
        "flops_mode": config.eval.flops_mode,
        "flops_normalized": host.flops.normalized(),
        "flops": host.flops.summary(),
        "d_decisions": decisions,
        "eval": host.eval_log.to_dict(),
        "history": host.history,
        "sparsity": host.diagnostics.summary(),
        "seconds_this_process": seconds,
        "workdir": paths.resolve(trainer.workdir),
    }
