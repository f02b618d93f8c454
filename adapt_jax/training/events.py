"""What a run logs while it trains: the periodic scalars, and TensorBoard-only details
(per-layer densities, each controller decision and mask event at its own iteration)."""

from __future__ import annotations

from typing import Any

import jax

from adapt_jax.training import writers
from adapt_jax.training.trainer import Trainer

# TensorBoard codes of the controller's actions ('wait': the window was not full yet).
ACTION_CODES = {"decrease": -1.0, "none": 0.0, "increase": 1.0, "dst": 2.0, "calibrate": 3.0,
                "wait": float("nan")}


def periodic_scalars(trainer: Trainer, metrics: dict[str, jax.Array],
                     iterations_per_sec: float) -> dict[str, float]:
    """The scalars logged every `train.log_every` iterations (raises on non-finite values)."""
    scalars = trainer.check_finite(metrics)
    trainer.flush_br()
    host = trainer.host
    window = host.window
    scalars["br_avg"] = window.value()
    if window.items:
        last = window.items[-1]  # under ada_rt the |beta| guard does not filter
        scalars["br"] = last.ratio() if last.beta != 0.0 else float("nan")
    scalars["br_skipped"] = window.skipped
    scalars["density_g"] = trainer.density("g")
    scalars["density_d"] = trainer.density("d")
    for net, v in host.flops.normalized().items():
        scalars[f"flops_normalized_{net}"] = v
    scalars.update(host.diagnostics.scalars())
    scalars["iterations_per_sec"] = iterations_per_sec
    return scalars


def event_counts(trainer: Trainer) -> dict[str, int]:
    """How many controller decisions and mask events (per net) the host state holds so far."""
    host = trainer.host
    counts = {net: len(track.history) for net, track in host.diagnostics.nets.items()}
    counts["decisions"] = 0 if host.controller is None else len(host.controller.decisions)
    return counts


class DetailWriter:
    """TensorBoard-only scalars too many or too sparse for the console line.

    Process 0 only; a second event file in the workdir, which TensorBoard reads as the same
    run. Decisions and mask events live in checkpointed host state, so a resumed run starts
    from `event_counts` and writes only new ones.
    """

    def __init__(self, trainer: Trainer, workdir: str):
        self.trainer = trainer
        self.writer = (writers.TensorBoardWriter(workdir) if jax.process_index() == 0
                       else None)
        self.logged = event_counts(trainer)
        self._densities_at: dict[str, int] | None = None  # event counts when last written

    def layer_densities(self, t: int) -> None:
        """Per-layer densities, written again only when a mask event happened since."""
        counts = event_counts(self.trainer)
        if self.writer is None or counts == self._densities_at:
            return
        self._densities_at = counts
        diag = self.trainer.host.diagnostics
        self.writer.write_scalars(t, {f"layer_density/{net}/{layer}": v for net in ("g", "d")
                                      for layer, v in diag.layer_densities(net).items()})

    def events(self) -> None:
        """Each controller decision and mask event not yet written, at its own iteration."""
        if self.writer is not None:
            self._write_new_events()
            self.writer.flush()
        self.logged = event_counts(self.trainer)

    def _write_new_events(self) -> None:
        host, logged = self.trainer.host, self.logged
        decisions = [] if host.controller is None else host.controller.decisions
        maskable_d = self.trainer.maskable("d")
        for d in decisions[logged.get("decisions", 0):]:
            self.writer.write_scalars(d.t, {
                "controller/action": ACTION_CODES.get(d.action, float("nan")),
                "controller/criterion": d.value,
                "controller/d_density": d.new_count / maskable_d,
                "controller/band_lower": host.controller.lower,
                "controller/band_upper": host.controller.upper})
        for net, track in host.diagnostics.nets.items():
            for t, itop, flip in track.history[max(1, logged.get(net, 0)):]:
                self.writer.write_scalars(t, {f"mask_events/itop_{net}": itop,
                                              f"mask_events/flip_rate_{net}": flip})

    def close(self) -> Any:
        if self.writer is not None:
            self.writer.close()
