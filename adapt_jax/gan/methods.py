"""The method table: which network is sparse, dynamic or density-controlled, and how it grows.

Every other module asks this table instead of testing method names, so adding a method is a
one-line change here.
"""

from __future__ import annotations

import dataclasses
import difflib

import ml_collections


@dataclasses.dataclass(frozen=True)
class MethodSpec:
    """How one method treats G and D."""

    g_sparse: bool
    g_dst: bool  # generator drop/grow every dT_G
    g_growth: str | None  # forced growth rule ('set' for sdst_set); None = config's g_growth
    d_sparse: bool
    d_mode: str  # 'fixed' | 'controlled' (BR controller) | 'dst' (plain D DST)
    d_dst_at_max: bool  # strict: one D DST step when BR says "too weak" at d_max
    baseline: bool  # initial D density from `strategy` (balance/strong) rather than density_d
    posthoc: bool = False
    d_growth: str | None = None  # forced D growth rule; None = config's d_growth
    label: str = ""  # the paper's row name in tables
    variant: str | None = None  # regrowth shown after the row name ('SET', 'RigL')
    controller: str | None = None  # 'dda' | 'relax' | 'strict' when d_mode == 'controlled'
    paper_d_max: float | None = None  # the paper's d_max for this method (strict: 0.5)
    paper_band: tuple[float, float] | None = None  # the paper's band when not [0.45, 0.55]


# In the paper's row order: baselines first, ADAPT last.
METHODS: dict[str, MethodSpec] = {
    "dense": MethodSpec(False, False, None, False, "fixed", False, False, label="Dense"),
    "static": MethodSpec(True, False, None, True, "fixed", False, True, label="STATIC"),
    "sdst_set": MethodSpec(True, True, "set", True, "fixed", False, True, label="SDST",
                           variant="SET"),
    "sdst_rigl": MethodSpec(True, True, "rigl", True, "fixed", False, True, label="SDST",
                            variant="RigL"),
    # Paper Table 7 (Appendix E.2): DST on both nets, regrowth by gradient (RigL) or at random
    # (SET) in G and D alike.
    "dst_both_set": MethodSpec(True, True, "set", True, "dst", False, True, d_growth="set",
                               label="DST-bothGD", variant="SET"),
    "dst_both": MethodSpec(True, True, "rigl", True, "dst", False, True, d_growth="rigl",
                           label="DST-bothGD", variant="RigL"),
    # Sec. 5.3: DDA's band is [0.5, 0.65].
    "dda": MethodSpec(True, False, None, True, "controlled", False, False, label="DDA",
                      controller="dda", paper_band=(0.5, 0.65)),
    "adapt_relax": MethodSpec(True, True, "rigl", True, "controlled", False, False,
                              label="ADAPT_relax", controller="relax"),
    "adapt_strict": MethodSpec(True, True, "rigl", True, "controlled", True, False,
                               label="ADAPT_strict", controller="strict", paper_d_max=0.5),
    "posthoc": MethodSpec(False, False, None, False, "fixed", False, False, posthoc=True,
                          label="Post-hoc"),
}

STRATEGIES = ("balance", "strong")


def get_method(name: str) -> MethodSpec:
    if name not in METHODS:
        close = difflib.get_close_matches(str(name), METHODS, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ValueError(f"config.method={name!r} is unknown; {hint}choose one of "
                         f"{sorted(METHODS)}.")
    return METHODS[name]


def growth_rules(config: ml_collections.ConfigDict) -> tuple[str, str]:
    """(G, D) regrowth rules: the method's where it fixes them, else `sparse.g/d_growth`."""
    spec = get_method(config.method)
    return (spec.g_growth or config.sparse.g_growth, spec.d_growth or config.sparse.d_growth)


def initial_densities(config: ml_collections.ConfigDict) -> tuple[float, float]:
    """(d_G, d_D) at iteration 0, following the paper's balance/strong strategies."""
    spec = get_method(config.method)
    d_g = float(config.sparse.density_g) if spec.g_sparse else 1.0
    if not spec.d_sparse:
        return d_g, 1.0
    if spec.baseline:
        if config.strategy not in STRATEGIES:
            raise ValueError(
                f"config.strategy={config.strategy!r} is unknown; choose one of {STRATEGIES}."
            )
        d_d = d_g if config.strategy == "balance" else float(config.sparse.d_max)
        return d_g, d_d
    d_d = config.sparse.density_d
    return d_g, d_g if d_d is None else float(d_d)
