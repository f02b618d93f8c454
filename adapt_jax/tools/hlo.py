"""Per-device batch sizes of the convolutions in a compiled (SPMD-partitioned) step.

Data parallelism is only real if every convolution runs on `global batch / devices` rows on
each device; a tensor the compiler left replicated shows up here as a full-batch convolution.
Used by the tests of the steps and by `benchmarks/accelerator.py`.
"""

from __future__ import annotations

import dataclasses
import re

_SHAPE = r"[a-z]+[0-9]*\[([0-9,]*)\]"
_DEF = re.compile(rf"%([\w.\-]+) = {_SHAPE}")
_CONV = re.compile(rf"%([\w.\-]+) = {_SHAPE}\S* convolution\(%([\w.\-]+), %([\w.\-]+)\),"
                   r" window=\{size=([0-9x]+)[^}]*\}, dim_labels=([a-z0-9]+)_([a-z0-9]+)->")


@dataclasses.dataclass(frozen=True)
class Conv:
    """One convolution: its name, what it computes, and the data rows it sees per device."""

    name: str
    kind: str  # 'activation' (forward or input gradient) | 'weight_gradient'
    batch: int
    op_name: str


def _dims(text: str) -> tuple[int, ...]:
    return tuple(int(d) for d in text.split(",") if d)


def convolutions(hlo_text: str) -> list[Conv]:
    """Every convolution of `compiled.as_text()` with the batch it runs on.

    An activation convolution's batch is the lhs 'b' dimension. A weight gradient contracts the
    data batch: XLA writes it as a convolution whose window spans the whole activation (window
    size = lhs spatial size) and whose lhs 'f' dimension is the data batch.
    """
    shapes = {m.group(1): _dims(m.group(2)) for m in _DEF.finditer(hlo_text)}
    out = []
    for line in hlo_text.splitlines():
        m = _CONV.search(line)
        if m is None:
            continue
        name, lhs, window, lhs_labels = m.group(1), m.group(3), m.group(5), m.group(6)
        lhs_shape = shapes[lhs]
        spatial = tuple(lhs_shape[lhs_labels.index(str(i))] for i in range(len(lhs_labels) - 2))
        weight_grad = _dims(window.replace("x", ",")) == spatial and max(spatial) > 1
        batch = lhs_shape[lhs_labels.index("f" if weight_grad else "b")]
        op = re.search(r'op_name="([^"]*)"', line)
        out.append(Conv(name, "weight_gradient" if weight_grad else "activation", batch,
                        op.group(1) if op else ""))
    return out


def batch_sizes(hlo_text: str) -> dict[int, int]:
    """{per-device batch: number of convolutions}: one key per batch the step runs at."""
    counts: dict[int, int] = {}
    for conv in convolutions(hlo_text):
        counts[conv.batch] = counts.get(conv.batch, 0) + 1
    return dict(sorted(counts.items()))
