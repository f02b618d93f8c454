"""Training-FLOPs accounting (paper Appendix F): per-iteration passes times per-sample MACs
(`adapt_jax.models.macs`) at the masks' densities, summed over a run and normalized by the
dense run's.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from adapt_jax.models.macs import LayerMacs, total_macs

MODES = ("reference", "exact")


def iteration_multipliers(mode: str, *, batch_d: int, batch_g: int, n_critic: int,
                          br_measured: bool = False) -> tuple[int, int]:
    """Samples-times-passes (G, D) of one iteration: multiply by per-sample MACs to get MACs.

    A forward counts 1, a forward+backward 3 (the backward is twice the forward).

    'reference' (the reference implementation's bookkeeping):
      G: `B_D * n_critic` (fakes for the D steps, forward) `+ 3 * B_G` (G step)
      D: `3 * B_D * n_critic` (D steps, real and fake counted as ONE pass) `+ B_G` (D in the
         G step, counted as a forward only); BR forwards not counted.
    'exact' (ours):
      G: `B_D * n_critic + 3 * B_G (+ B_G when BR is measured: the G_post forward)`
      D: `2 * 3 * B_D * n_critic` (real and fake, each forward+backward) `+ B_G` (the G step's
         D pass counted as the reference does: its backward to G's output, input gradients
         only, is left out so the modes differ only by the terms listed here)
         `(+ B_G + B_D when BR is measured: D(G_post(z)) and D(x_r))`.
    """
    if mode == "reference":
        return batch_d * n_critic + 3 * batch_g, 3 * batch_d * n_critic + batch_g
    if mode == "exact":
        br = int(br_measured)
        return (batch_d * n_critic + 3 * batch_g + br * batch_g,
                6 * batch_d * n_critic + batch_g + br * (batch_g + batch_d))
    raise ValueError(f"unknown flops mode {mode!r}; expected one of {MODES}")


_NETS = ("g", "d")


class TrainingFlops:
    """Host-side accountant of a run's training MACs in one mode, normalized by a dense run's.

    The dense run has `dense_iters` iterations (default `num_iters`): the paper normalizes
    post-hoc pruning, which trains T dense iterations and then fine-tunes 0.5 T, by the
    T-iteration dense run ("around 150%", Appendix E.3), so the trainer passes the configured T.

    Call `iteration(t, ...)` once per iteration, t = 1..T, with the per-layer densities in force
    at the END of iteration t (after its mask update / D resize; None = unchanged).

    'exact' (ours): iteration t costs `F_G(d_G) * m_G + F_D(d_D) * m_D` with the per-sample MACs
    `F` (`total_macs`) at the densities in force DURING t (those of the previous call, the
    initial ones for t = 1) and `m` from `iteration_multipliers('exact', br_measured=...)`.
    The dense run is the same sum with `F(1)`.

    'reference' (the reference's bookkeeping, quirks kept): with
    `k_G = g_interval` (or `num_iters` when G's mask is fixed/dense) and
    `k_D = n_critic * d_interval` (or `n_critic * num_iters`) -- D counted in D steps although
    its per-iteration multiplier already contains `n_critic`, so D weighs n_critic times too much
    in the combined ratio --, the total of a net is `F(d_0) * m * k` at setup plus
    `F(d_t) * m * k` at every scheduled event t (g_event/d_event, counted even if nothing
    changed), `d_t` being the densities after the event. The dense run accumulates `F(1) * m * k`
    at the same moments. An interval given as `(k_setup, k_event)` covers a run whose first
    span differs from the later ones: `posthoc` is T dense iterations, then one prune event
    followed by the fine-tuning iterations. A static run therefore totals `F_G(d_G) * m_G * T` and
    `F_D(d_D) * m_D * n_critic * T`; BR forwards and the second D pass are not counted.
    """

    def __init__(self, g_layers: Sequence[LayerMacs], d_layers: Sequence[LayerMacs], *,
                 batch_d: int, batch_g: int, n_critic: int, num_iters: int, mode: str,
                 g_interval: int | tuple[int, int] | None, d_interval: int | None,
                 g_densities: Mapping[str, float], d_densities: Mapping[str, float],
                 dense_iters: int | None = None):
        if mode not in MODES:
            raise ValueError(f"unknown flops mode {mode!r}; expected one of {MODES}")
        self._layers = {"g": list(g_layers), "d": list(d_layers)}
        self._batch = {"batch_d": batch_d, "batch_g": batch_g, "n_critic": n_critic}
        self.num_iters = num_iters
        self.dense_iters = num_iters if dense_iters is None else int(dense_iters)
        self.mode = mode
        self._interval = {"g": g_interval, "d": d_interval}
        self._densities: dict[str, dict[str, float]] = {"g": {}, "d": {}}
        self._set_densities("g", g_densities)
        self._set_densities("d", d_densities)
        self._macs = {key: 0.0 for key in ("g", "d", "g_dense", "d_dense")}
        self.t = 0
        if mode == "reference":
            for net in _NETS:
                self._add_reference(net, setup=True)

    def _set_densities(self, net: str, densities: Mapping[str, float] | None) -> None:
        if densities is None:
            return
        known = {lm.name for lm in self._layers[net]}
        unknown = sorted(set(densities) - known)
        if unknown:
            raise ValueError(f"{net.upper()} densities name layers the MAC count does not know "
                             f"(mask and layer names must match): {unknown[:5]}")
        self._densities[net] = {k: float(v) for k, v in densities.items()}

    def _per_sample(self, net: str) -> tuple[float, float]:
        """(sparse, dense) per-sample MACs of `net` at its current densities."""
        layers = self._layers[net]
        return total_macs(layers, self._densities[net]), total_macs(layers)

    def _add(self, net: str, multiplier: float) -> None:
        sparse, dense = self._per_sample(net)
        self._macs[net] += sparse * multiplier
        self._macs[f"{net}_dense"] += dense * multiplier

    def _add_reference(self, net: str, setup: bool = False) -> None:
        """One reference accumulation: per-iteration MACs times the interval `k`."""
        m_g, m_d = iteration_multipliers("reference", **self._batch)
        interval = self._interval[net]
        if isinstance(interval, (tuple, list)):  # (k at setup, k at every event)
            interval = interval[0 if setup else 1]
        interval = interval or self.num_iters
        k = interval if net == "g" else interval * self._batch["n_critic"]
        self._add(net, (m_g if net == "g" else m_d) * k)

    def iteration(self, t: int, g_densities: Mapping[str, float] | None,
                  d_densities: Mapping[str, float] | None, *, br_measured: bool,
                  g_event: bool, d_event: bool) -> None:
        """Account iteration t (1-based, consecutive); see the class docstring."""
        if t != self.t + 1:
            raise ValueError(f"iteration {t} after {self.t}: calls must be consecutive")
        events = {"g": g_event, "d": d_event}
        for net in _NETS:
            if events[net] and self._interval[net] is None:
                raise ValueError(f"{net.upper()} event at t={t} but its mask has no interval")
        if self.mode == "exact":
            m_g, m_d = iteration_multipliers("exact", br_measured=br_measured, **self._batch)
            self._add("g", m_g)
            self._add("d", m_d)
        self._set_densities("g", g_densities)
        self._set_densities("d", d_densities)
        if self.mode == "reference":
            for net in _NETS:
                if events[net]:
                    self._add_reference(net)
        self.t = t

    def totals(self) -> dict[str, float]:
        """Raw MAC totals so far: per net and combined, sparse and dense."""
        m = self._macs
        return {**m, "total": m["g"] + m["d"], "total_dense": m["g_dense"] + m["d_dense"]}

    def normalized(self, same_length: bool = False) -> dict[str, float]:
        """Training FLOPs over the `dense_iters`-iteration dense run's: {'g', 'd', 'total'}.

        The dense run does this run's per-iteration work with every density 1 (so far, scaled
        by `num_iters / dense_iters`); `same_length=True` compares with a dense run as long as
        this one instead. NaN before any count.
        """
        tot = self.totals()
        scale = 1.0 if same_length else self.num_iters / self.dense_iters
        return {key: scale * tot[key] / tot[f"{key}_dense"] if tot[f"{key}_dense"] else math.nan
                for key in ("g", "d", "total")}

    def report(self) -> dict[str, Any]:
        """The normalized FLOPs, plus (only where the two dense runs differ: post-hoc) the
        ratio to a dense run as long as this one, labelled as such."""
        out: dict[str, Any] = {"normalized": self.normalized()}
        if self.dense_iters != self.num_iters:
            out["dense_iterations"] = self.dense_iters
            out[f"normalized_vs_dense_{self.num_iters}_iterations"] = self.normalized(True)
        return out

    def to_dict(self) -> dict:
        """JSON-able state; the layers are not stored (rebuilt from the model), only checked."""
        return {
            "mode": self.mode, "num_iters": self.num_iters, "dense_iters": self.dense_iters,
            **self._batch,
            "g_interval": self._interval["g"], "d_interval": self._interval["d"],
            "g_densities": dict(self._densities["g"]), "d_densities": dict(self._densities["d"]),
            "macs": dict(self._macs), "t": self.t,
            "dense_per_sample": {net: self._per_sample(net)[1] for net in _NETS},
        }

    @classmethod
    def from_dict(cls, d: Mapping, g_layers: Sequence[LayerMacs],
                  d_layers: Sequence[LayerMacs]) -> TrainingFlops:
        """Restore `to_dict` output; raises if the layers' dense MACs differ from the saved."""
        obj = cls(g_layers, d_layers, batch_d=d["batch_d"], batch_g=d["batch_g"],
                  n_critic=d["n_critic"], num_iters=d["num_iters"], mode=d["mode"],
                  g_interval=d["g_interval"], d_interval=d["d_interval"],
                  g_densities=d["g_densities"], d_densities=d["d_densities"],
                  dense_iters=d["dense_iters"])
        for net in _NETS:
            if obj._per_sample(net)[1] != d["dense_per_sample"][net]:
                raise ValueError(f"{net.upper()} layers changed since the state was saved")
        obj._macs = {k: float(v) for k, v in d["macs"].items()}
        obj.t = int(d["t"])
        return obj


class FlopsLedger:
    """Both accounting modes side by side, so summaries can show them together.

    `mode` (eval.flops_mode) leads: `normalized()`/`totals()` are its numbers (the log line and
    TensorBoard). Takes `TrainingFlops`'s arguments (less `mode`) and forwards `iteration`.
    Both books run from the start, so a resumed run may change `eval.flops_mode` and still
    report the new mode's exact total.
    """

    def __init__(self, g_layers: Sequence[LayerMacs], d_layers: Sequence[LayerMacs], *,
                 mode: str, **kwargs: Any):
        if mode not in MODES:
            raise ValueError(f"unknown flops mode {mode!r}; expected one of {MODES}")
        self.mode = mode
        self.books = {m: TrainingFlops(g_layers, d_layers, mode=m, **kwargs) for m in MODES}

    def iteration(self, *args: Any, **kwargs: Any) -> None:
        for book in self.books.values():
            book.iteration(*args, **kwargs)

    def totals(self) -> dict[str, float]:
        return self.books[self.mode].totals()

    def normalized(self) -> dict[str, float]:
        return self.books[self.mode].normalized()

    def summary(self) -> dict[str, Any]:
        """{'lead': mode, 'reference': report, 'exact': report} for summary.json."""
        return {"lead": self.mode, **{m: book.report() for m, book in self.books.items()}}

    def to_dict(self) -> dict:
        return {"lead": self.mode, "books": {m: b.to_dict() for m, b in self.books.items()}}

    @classmethod
    def from_dict(cls, d: Mapping, g_layers: Sequence[LayerMacs],
                  d_layers: Sequence[LayerMacs], lead: str | None = None) -> FlopsLedger:
        """Restore `to_dict` output; `lead` (the resumed config's mode) replaces the saved."""
        obj = cls.__new__(cls)
        obj.mode = lead or d["lead"]
        obj.books = {m: TrainingFlops.from_dict(state, g_layers, d_layers)
                     for m, state in d["books"].items()}
        return obj
