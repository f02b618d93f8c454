"""Balance criteria and the host-side discriminator density controller (docs/design.md §4-5).

Kept in plain Python between compiled steps: decisions are rare (every dT_D iterations), the
state is a few hundred floats, and it must be checkpointed as readable JSON. Densities are held
as integer active counts so that steps of Δd land exactly on d_max.
"""

from __future__ import annotations

import bisect
import collections
import dataclasses
import math
from typing import Any

BETA_EPS = 1e-6
CRITERIA = ("br", "ada_rt")
REDUCTIONS = ("mean_of_ratios", "ratio_of_means")
MODES = ("dda", "relax", "strict")
BANDS = ("paper", "calibrated", "reference")
MIN_HALF_WIDTH = 0.01  # a calibrated band never narrower than ±0.01 (BR near 0)


@dataclasses.dataclass(frozen=True)
class Measurement:
    """One BR measurement (raw D logits means) taken inside the G step of iteration t."""

    t: int
    fake_post: float  # E[D(G_post(z))]
    fake_pre: float  # E[D(G_pre(z))]
    real: float  # E[D(x_r)]
    real_sign: float  # E[sign(D(x_r))], ADA's r_t

    @property
    def beta(self) -> float:
        return self.real - self.fake_pre

    def ratio(self) -> float:
        return (self.fake_post - self.fake_pre) / self.beta


class BalanceWindow:
    """Sliding window of the measurements of the last `window_iters` iterations (never reset)."""

    def __init__(self, window_iters: int, every: int, criterion: str = "br",
                 reduce: str = "mean_of_ratios"):
        if criterion not in CRITERIA:
            raise ValueError(
                f"balance.criterion={criterion!r} is unknown; choose one of {CRITERIA}.")
        if reduce not in REDUCTIONS:
            raise ValueError(f"balance.reduce={reduce!r} is unknown; choose one of {REDUCTIONS}.")
        self.window_iters = int(window_iters)
        self.every = int(every)
        self.criterion = criterion
        self.reduce = reduce
        self.items: collections.deque[Measurement] = collections.deque()
        self.skipped = 0  # BR measurements dropped because |beta| < BETA_EPS
        self.last_t = 0  # iteration of the newest measurement, skipped ones included

    @property
    def capacity(self) -> int:
        return max(1, self.window_iters // self.every)

    def add(self, m: Measurement) -> None:
        if self.criterion == "br" and abs(m.beta) < BETA_EPS:
            self.skipped += 1
        else:
            self.items.append(m)
        self.last_t = max(self.last_t, m.t)
        while self.items and self.items[0].t <= m.t - self.window_iters:
            self.items.popleft()

    def full(self) -> bool:
        """Measurements have spanned a whole window (a skipped one does not make the controller
        wait another window) and at least one of them counts."""
        return bool(self.items) and self.last_t >= self.capacity * self.every

    def value(self) -> float:
        """Time-averaged criterion over the window (NaN when empty)."""
        if not self.items:
            return math.nan
        n = len(self.items)
        if self.criterion == "ada_rt":
            return sum(m.real_sign for m in self.items) / n
        if self.reduce == "mean_of_ratios":
            return sum(m.ratio() for m in self.items) / n
        num = sum(m.fake_post - m.fake_pre for m in self.items)
        den = sum(m.beta for m in self.items)
        return num / den if abs(den) >= BETA_EPS else math.nan

    def to_dict(self) -> dict[str, Any]:
        return {"items": [dataclasses.astuple(m) for m in self.items], "skipped": self.skipped,
                "last_t": self.last_t}

    def load_dict(self, d: dict[str, Any]) -> None:
        self.items = collections.deque(_measurement(it) for it in d["items"])
        self.skipped = int(d["skipped"])
        self.last_t = int(d["last_t"])


@dataclasses.dataclass(frozen=True)
class Calibration:
    """How a calibrated band was obtained (recorded in the checkpoint and summary.json)."""

    t: int  # iteration of the D check that set the band (end of the warm-up)
    centre: float
    lower: float
    upper: float
    measurements: int  # measurements the centre was computed from
    from_t: int  # first iteration whose measurement counted (later half of the warm-up)
    warmup_density: float  # D's density during the warm-up (d_max)


def calibrate_band(window: BalanceWindow, t: int, width: float,
                   warmup_density: float) -> Calibration:
    """The band around the criterion that D at d_max showed during the warm-up [0, t].

    Centre: the window's own reduction (so the band is in the units the controller compares)
    over the measurements of the warm-up's later half, which skips the transient of the first
    iterations. Half-width: `width` x |centre|, at least MIN_HALF_WIDTH.
    """
    from_t = t // 2 + 1
    later = BalanceWindow(window.window_iters, window.every, window.criterion, window.reduce)
    later.items.extend(m for m in window.items if m.t >= from_t)
    centre = later.value()
    if math.isnan(centre):
        raise ValueError(f"no usable balance measurement in iterations {from_t}..{t} to "
                         "calibrate the band; lengthen sparse.d_adjust_every or lower "
                         "balance.br_every.")
    half = max(width * abs(centre), MIN_HALF_WIDTH)
    return Calibration(t=t, centre=centre, lower=centre - half, upper=centre + half,
                       measurements=len(later.items), from_t=from_t,
                       warmup_density=warmup_density)


@dataclasses.dataclass(frozen=True)
class ReferenceBand:
    """A band that follows another run's BR over training (recorded in the checkpoint).

    BR drifts through training (on the digits config from ~0.02 to ~0.25), so a fixed band
    fits one phase only. This one is centred, at each D check t, on the time-averaged BR the
    reference run (the same config with D at d_max) logged at t: the sparse-D GAN is kept as
    balanced as the dense-D GAN was at the same point of training. `offset` shifts the band
    to c(t)·(1 + offset): a positive one tolerates a D that much weaker than the dense one and
    sheds density once the sparse D balances like a dense D (BR at or below c(t)).
    """

    source: str  # the reference run's summary.json
    width: float  # half-width relative to c(t), as a calibrated band's
    trajectory: tuple[tuple[int, float], ...]  # (t, windowed BR) of the reference, finite only
    offset: float = 0.0  # the band's centre is c(t)·(1 + offset)

    def band_at(self, t: int) -> tuple[float, float]:
        """[lower, upper] at iteration t: around the reference's newest value at or before t
        (its first value before that; its last one after its end)."""
        i = bisect.bisect_right(self.trajectory, t, key=lambda point: point[0]) - 1
        reference = self.trajectory[max(i, 0)][1]
        centre = reference + self.offset * abs(reference)
        half = max(self.width * abs(reference), MIN_HALF_WIDTH)
        return centre - half, centre + half

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "width": self.width, "offset": self.offset,
                "trajectory": [list(p) for p in self.trajectory]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ReferenceBand:
        return cls(str(d["source"]), float(d["width"]),
                   tuple((int(t), float(v)) for t, v in d["trajectory"]),
                   float(d.get("offset", 0.0)))  # checkpoints from before the offset existed


def reference_band(summary: dict[str, Any], source: str, width: float,
                   offset: float = 0.0) -> ReferenceBand:
    """The band following `summary`'s time-averaged BR history (a finished run's summary.json,
    or the trimmed copy in configs/reference/)."""
    trajectory = tuple((int(t), float(v)) for t, v in summary["history"]["br"]
                       if v is not None and math.isfinite(v))
    if len(trajectory) < 2:
        raise ValueError(f"{source} holds {len(trajectory)} finite BR values; a reference run "
                         "needs balance measurements through its training.")
    return ReferenceBand(source=source, width=width, trajectory=trajectory, offset=offset)


def load_reference_band(source: str, width: float, offset: float = 0.0) -> ReferenceBand:
    """`reference_band` of a run directory or of its summary.json (local or gs://)."""
    from adapt_jax import paths, rundir  # file access stays out of the controller's logic

    path = source if source.endswith(".json") else rundir.RunDir(source).summary
    return reference_band(paths.read_json(path), path, width, offset)


def _measurement(item: list) -> Measurement:
    t, fake_post, fake_pre, real, real_sign = item
    return Measurement(int(t), float(fake_post), float(fake_pre), float(real), float(real_sign))


@dataclasses.dataclass(frozen=True)
class Decision:
    t: int
    # 'increase' | 'decrease' | 'dst' | 'none' | 'wait' (window not full) | 'calibrate' (the
    # end of a calibrated band's warm-up: D moves from d_max to its initial density)
    action: str
    value: float
    old_count: int
    new_count: int
    lower: float  # the band in force at this check
    upper: float


class DensityController:
    """Decides D's active count every dT_D iterations from the windowed balance criterion.

    BR > upper means G moves D's output a lot relative to the real/fake gap: D is too weak, so
    it gets denser (or, in strict mode at d_max, one DST step). ADA's r_t is read the other way
    round (high r_t = D overfits = too strong).
    """

    def __init__(self, *, mode: str, maskable: int, initial_count: int, d_min: float,
                 d_max: float, delta_d: float, lower: float, upper: float,
                 window: BalanceWindow, calibration_width: float | None = None,
                 reference: ReferenceBand | None = None):
        """`calibration_width` set: the first decision calibrates the band (see
        `calibrate_band`) instead of deciding; until then D runs at d_max. `reference`: the
        band [lower, upper] came from another run (recorded with the band)."""
        if mode not in MODES:
            raise ValueError(f"controller mode {mode!r} is unknown; choose one of {MODES}.")
        self.mode = mode
        self.maskable = int(maskable)
        self.count = int(initial_count)
        self.min_count = max(1, round(d_min * maskable))
        self.max_count = round(d_max * maskable)
        self.step_count = max(1, round(delta_d * maskable))
        self.lower, self.upper = float(lower), float(upper)
        self.window = window
        self.decisions: list[Decision] = []
        self.calibration_width = calibration_width
        self.calibration: Calibration | None = None
        self.reference = reference

    @property
    def calibrating(self) -> bool:
        """Still in the warm-up of a calibrated band (D at d_max, band not yet known)."""
        return self.calibration_width is not None and self.calibration is None

    @property
    def density(self) -> float:
        return self.count / self.maskable

    def _too_weak(self, v: float) -> bool:
        return v < self.lower if self.window.criterion == "ada_rt" else v > self.upper

    def _too_strong(self, v: float) -> bool:
        return v > self.upper if self.window.criterion == "ada_rt" else v < self.lower

    def decide(self, t: int) -> Decision:
        """One scheduled check; updates `count` and logs the decision."""
        if self.calibrating:
            return self._calibrate(t)
        if self.reference is not None:
            self.lower, self.upper = self.reference.band_at(t)
        v = self.window.value()
        old = self.count
        if not self.window.full() or math.isnan(v):
            action, new = "wait", old
        elif self._too_weak(v):
            if old < self.max_count:
                action, new = "increase", min(old + self.step_count, self.max_count)
            elif self.mode == "strict":
                action, new = "dst", old
            else:
                action, new = "none", old
        elif self._too_strong(v) and old > self.min_count:
            action, new = "decrease", max(old - self.step_count, self.min_count)
        else:
            action, new = "none", old
        self.count = new
        decision = Decision(t, action, v, old, new, self.lower, self.upper)
        self.decisions.append(decision)
        return decision

    def _calibrate(self, t: int) -> Decision:
        """End of the warm-up: set the band, then move D from d_max to its initial count.

        The window is emptied so that the first real decision reads only measurements taken
        at the sparse density, not the warm-up's.
        """
        cal = calibrate_band(self.window, t, self.calibration_width,
                             self.max_count / self.maskable)
        self.calibration = cal
        self.lower, self.upper = cal.lower, cal.upper
        self.window.items.clear()
        decision = Decision(t, "calibrate", cal.centre, self.max_count, self.count, cal.lower,
                            cal.upper)
        self.decisions.append(decision)
        return decision

    def band(self) -> dict[str, Any]:
        """The band in force and how it was obtained (for summary.json)."""
        if self.reference is not None:  # the band in force now; the path is in the decisions
            return {"mode": "reference", "source": self.reference.source,
                    "width": self.reference.width, "offset": self.reference.offset,
                    "lower": self.lower, "upper": self.upper}
        if self.calibration_width is None:
            return {"mode": "paper", "lower": self.lower, "upper": self.upper}
        out = {"mode": "calibrated", "width": self.calibration_width}
        if self.calibration is not None:
            out.update(dataclasses.asdict(self.calibration))
        return out

    def to_dict(self) -> dict[str, Any]:
        """The controller's own state; the window it reads is saved by its owner."""
        return {"count": self.count, "decisions": [dataclasses.asdict(d) for d in self.decisions],
                "lower": self.lower, "upper": self.upper,
                "calibration": None if self.calibration is None
                else dataclasses.asdict(self.calibration),
                "reference": None if self.reference is None else self.reference.to_dict()}

    def load_dict(self, d: dict[str, Any]) -> None:
        self.count = int(d["count"])
        self.decisions = [Decision(**x) for x in d["decisions"]]
        self.lower, self.upper = float(d["lower"]), float(d["upper"])
        cal = d["calibration"]
        self.calibration = None if cal is None else Calibration(**cal)
        ref = d["reference"]
        self.reference = None if ref is None else ReferenceBand.from_dict(ref)
