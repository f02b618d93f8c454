"""Which evaluation is the run's best: the rule behind `eval.best` and `checkpoints_best`.

Lower scores are better (FID, cfd). Only evaluations from `eligible_from` on compete: a post-hoc
run trains G dense before pruning it, and its reported best (paper Table 6) must be a score of
the pruned generator, not of the dense one it started from.
"""

from __future__ import annotations

import math
from typing import Any


def update_best(log: dict[str, Any], t: int, value: float, eligible_from: int = 0) -> bool:
    """Record `value` (the score at iteration t) in `log` if it is the best eligible one so far.

    `log` holds 'best' and 'best_iteration' (None before any eligible score); returns whether
    this evaluation became the best, i.e. whether to save the best checkpoint. A stored best
    from before `eligible_from` (a run resumed from a checkpoint written under the old rule)
    does not count, and neither do non-finite scores, which would otherwise block every later
    comparison.
    """
    log["best_from"] = eligible_from
    if t < eligible_from or not math.isfinite(value):
        return False
    best, at = log.get("best"), log.get("best_iteration")
    stale = at is not None and at < eligible_from
    if best is None or stale or value < best:
        log["best"], log["best_iteration"] = float(value), t
        return True
    return False
