"""Host-side sparsity diagnostics of a run: ITOP rate, mask flip rate, per-layer densities.

ITOP (Liu et al. 2021) asks how many weights DST has ever tried (the union of all masks over
time); the flip rate how much one event changed; the layer table how far DST and the D density
controller moved each layer from where ERK started it. The trainer calls `observe` every
iteration, but masks leave the device only when `event` is true (or on a net's first call), so
nothing is transferred between mask events. The state is plain data (`to_dict` is JSON, masks as
zlib-compressed bit strings) and goes into the host checkpoint.
"""

from __future__ import annotations

import base64
import zlib
from typing import Any

import jax
import numpy as np

from adapt_jax import sparse

NETS = ("g", "d")


def _encode(mask: np.ndarray) -> dict:
    bits = zlib.compress(np.packbits(mask.reshape(-1)).tobytes())
    return {"shape": list(mask.shape), "bits": base64.b64encode(bits).decode("ascii")}


def _decode(d: dict) -> np.ndarray:
    packed = np.frombuffer(zlib.decompress(base64.b64decode(d["bits"])), np.uint8)
    shape = tuple(d["shape"])
    return np.unpackbits(packed, count=int(np.prod(shape))).astype(bool).reshape(shape)


class _Net:
    """What is tracked for one network: masks are `{layer name: bool array}` on the host."""

    def __init__(self, t: int, masks: dict[str, np.ndarray]):
        self.initial = {k: float(m.mean()) for k, m in masks.items()}
        self.sizes = {k: int(m.size) for k, m in masks.items()}
        self.current = masks
        self.ever = {k: m.copy() for k, m in masks.items()}
        self.history: list[list[float]] = [[t, sparse.itop_rate(self.ever), 0.0]]

    def event(self, t: int, masks: dict[str, np.ndarray]) -> tuple[float, float]:
        flip = sparse.flip_rate(self.current, masks)
        self.ever = sparse.update_ever_active(self.ever, masks)
        self.current = masks
        itop = sparse.itop_rate(self.ever)
        self.history.append([t, itop, flip])
        return itop, flip

    def to_dict(self) -> dict:
        return {"initial": self.initial, "sizes": self.sizes, "history": self.history,
                "current": {k: _encode(m) for k, m in self.current.items()},
                "ever": {k: _encode(m) for k, m in self.ever.items()}}

    @classmethod
    def from_dict(cls, d: dict) -> _Net:
        net = cls.__new__(cls)
        net.initial, net.sizes = dict(d["initial"]), dict(d["sizes"])
        net.history = [list(h) for h in d["history"]]
        net.current = {k: _decode(v) for k, v in d["current"].items()}
        net.ever = {k: _decode(v) for k, v in d["ever"].items()}
        return net

    def density(self) -> float:
        return sum(int(m.sum()) for m in self.current.values()) / sum(self.sizes.values())

    def initial_density(self) -> float:
        total = sum(self.sizes.values())
        return sum(self.initial[k] * n for k, n in self.sizes.items()) / total

    def summary(self) -> dict[str, Any]:
        flips = [h[2] for h in self.history[1:]]
        return {
            "itop_rate": self.history[-1][1],
            "flip_rate_last": flips[-1] if flips else 0.0,
            "flip_rate_mean": float(np.mean(flips)) if flips else 0.0,
            "events": len(flips),
            "flip_history": [[t, flip] for t, _, flip in self.history[1:]],
            "density_initial": self.initial_density(),
            "density_final": self.density(),
            "layers": {k: {"size": self.sizes[k], "initial": self.initial[k],
                           "final": float(self.current[k].mean()),
                           "ever_active": float(self.ever[k].mean())} for k in self.sizes},
        }


class SparsityDiagnostics:
    """ITOP rate, flip rate and per-layer densities of G and D over a run."""

    def __init__(self):
        self.nets: dict[str, _Net] = {}

    def observe(self, t: int, net: str, masks: Any, event: bool) -> None:
        """Record `net`'s masks after iteration t when they may have changed (`event`).

        The first call of a net records its starting masks (call it at t=0 for the ERK
        densities). This host copy is the trainer's only view of the masks: densities are read
        from it, so masks leave the device once per mask event and never otherwise.
        """
        if net not in NETS:
            raise ValueError(f"net={net!r}: use 'g' or 'd'.")
        if not event and net in self.nets:
            return
        named = jax.device_get(sparse.named_masks(masks))
        host = {k: np.asarray(m, bool) for k, m in named.items()}
        if net not in self.nets:
            self.nets[net] = _Net(t, host)
        else:
            self.nets[net].event(t, host)

    def density(self, net: str) -> float:
        """Overall density of `net`'s latest observed masks."""
        return self.nets[net].density()

    def active(self, net: str) -> int:
        """Active entries of `net`'s latest observed masks."""
        return sum(int(m.sum()) for m in self.nets[net].current.values())

    def maskable(self, net: str) -> int:
        return sum(self.nets[net].sizes.values())

    def layer_densities(self, net: str) -> dict[str, float]:
        """`{layer: density}` of `net`'s latest observed masks."""
        return {k: float(m.mean()) for k, m in self.nets[net].current.items()}

    def scalars(self) -> dict[str, float]:
        """The latest ITOP and flip rate of every observed net, for periodic logging."""
        out = {}
        for net, track in self.nets.items():
            _, itop, flip = track.history[-1]
            out[f"itop_{net}"], out[f"flip_rate_{net}"] = itop, flip
        return out

    def summary(self) -> dict[str, Any]:
        """JSON-able per-net summary (for summary.json)."""
        return {net: track.summary() for net, track in self.nets.items()}

    def layer_table(self) -> str:
        """Markdown table: each layer's ERK start vs. final density, and its ever-active share."""
        lines = ["| net | layer | weights | initial | final | change | ever active |",
                 "|---|---|---:|---:|---:|---:|---:|"]
        for net, track in self.nets.items():
            for name, row in track.summary()["layers"].items():
                change = row["final"] - row["initial"]
                lines.append(f"| {net.upper()} | {name} | {row['size']} | {row['initial']:.4f} | "
                             f"{row['final']:.4f} | {change:+.4f} | {row['ever_active']:.4f} |")
        return "\n".join(lines) + "\n"

    def to_dict(self) -> dict[str, Any]:
        return {net: track.to_dict() for net, track in self.nets.items()}

    def load_dict(self, d: dict[str, Any]) -> None:
        self.nets = {net: _Net.from_dict(v) for net, v in d.items()}
