"""The host side of a run: everything outside the device state that a checkpoint must hold.

One object, one `to_dict`: the iteration counter, the data position, the BR window, the density
controller, the FLOPs accountant, the mask diagnostics, the BR/density history and the
evaluation log. Plain JSON, so a resumed run continues exactly and a person can read it.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from adapt_jax import evaluation
from adapt_jax.gan import balance, methods
from adapt_jax.gan.state import TrainState
from adapt_jax.training import flops
from adapt_jax.training.build import Components, calibrates_band
from adapt_jax.training.diagnostics import SparsityDiagnostics


@dataclasses.dataclass
class EvalLog:
    """Scores over the run and the best one (lower is better for every score we report)."""

    name: str | None = None
    best: float | None = None
    best_iteration: int | None = None
    best_from: int = 0  # first iteration whose score may be the best (post-hoc: the prune)
    history: list = dataclasses.field(default_factory=list)

    def record(self, t: int, name: str, scores: dict[str, float], eligible_from: int) -> bool:
        """Add the scores of iteration t; returns whether `scores[name]` became the best (the
        rule is `eval.update_best`'s, applied to this log's fields)."""
        self.name = name
        self.history.append([t, scores])
        return evaluation.update_best(self.__dict__, t, scores[name], eligible_from)

    def evaluated(self, t: int) -> bool:
        return any(int(entry[0]) == t for entry in self.history)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class HostState:
    """The checkpointed host state of one run (see the module docstring)."""

    t: int
    data_position: int
    window: balance.BalanceWindow
    controller: balance.DensityController | None
    flops: flops.FlopsLedger
    diagnostics: SparsityDiagnostics
    history: dict[str, list]
    eval_log: EvalLog

    @classmethod
    def create(cls, c: Components, state: TrainState,
               layers: tuple[list, list]) -> HostState:
        """The host state at iteration 0 of a run whose device state is `state`."""
        config = c.config
        diagnostics = SparsityDiagnostics()
        diagnostics.observe(0, "g", state.g.masks, event=True)
        diagnostics.observe(0, "d", state.d.masks, event=True)
        bc = config.balance
        window = balance.BalanceWindow(bc.window, bc.br_every, bc.criterion, bc.reduce)
        controller = None
        if c.method.d_mode == "controlled":
            sp = config.sparse
            calibrate = calibrates_band(c)
            maskable = diagnostics.maskable("d")
            initial = (round(methods.initial_densities(config)[1] * maskable) if calibrate
                       else diagnostics.active("d"))
            reference = (balance.load_reference_band(bc.reference, bc.reference_width,
                                                     bc.reference_offset)
                         if bc.band == "reference" else None)
            lower, upper = reference.band_at(0) if reference else (bc.lower, bc.upper)
            controller = balance.DensityController(
                mode=c.method.controller, maskable=maskable, initial_count=initial,
                d_min=sp.d_min, d_max=sp.d_max, delta_d=sp.delta_d,
                lower=lower, upper=upper, window=window,
                calibration_width=bc.calibration_width if calibrate else None,
                reference=reference)
        sched, tc = c.schedule, config.train
        g_layers, d_layers = layers
        accountant = flops.FlopsLedger(
            g_layers, d_layers, batch_d=tc.batch_d, batch_g=tc.batch_g,
            n_critic=tc.n_critic, num_iters=sched.total, mode=config.eval.flops_mode,
            dense_iters=tc.num_iters,
            g_interval=sched.g_every or ((sched.prune_at, sched.total - sched.prune_at)
                                         if c.method.posthoc else None),
            d_interval=sched.d_every,
            g_densities=diagnostics.layer_densities("g"),
            d_densities=diagnostics.layer_densities("d"))
        return cls(t=0, data_position=0, window=window, controller=controller,
                   flops=accountant, diagnostics=diagnostics,
                   history={"br": [], "density_d": [], "density_g": []}, eval_log=EvalLog())

    def to_dict(self, config_json: str) -> dict[str, Any]:
        return {
            "t": self.t,
            "data_position": self.data_position,
            "window": self.window.to_dict(),
            "controller": None if self.controller is None else self.controller.to_dict(),
            "flops": self.flops.to_dict(),
            "history": self.history,
            "eval": self.eval_log.to_dict(),
            "diagnostics": self.diagnostics.to_dict(),
            "config": config_json,
        }

    def load_dict(self, d: dict[str, Any], layers: tuple[list, list]) -> None:
        """Continue from `to_dict` output (the layers rebuild the FLOPs accountant)."""
        self.t = int(d["t"])
        self.data_position = int(d["data_position"])
        self.window.load_dict(d["window"])
        if self.controller is not None:
            self.controller.load_dict(d["controller"])
        self.flops = flops.FlopsLedger.from_dict(d["flops"], *layers, lead=self.flops.mode)
        self.history = {k: [tuple(x) for x in v] for k, v in d["history"].items()}
        self.eval_log = EvalLog(**d["eval"])
        self.diagnostics.load_dict(d["diagnostics"])
