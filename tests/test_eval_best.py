"""update_best: the best score and checkpoint follow only eligible (post-pruning) evaluations."""

import math

from adapt_jax.evaluation.best import update_best


def fresh_log():
    return {"name": "cfd", "best": None, "best_iteration": None, "history": []}


def run(scores, eligible_from=0, log=None):
    """Feed (t, value) pairs; returns the log and the iterations that saved a best checkpoint."""
    log = fresh_log() if log is None else log
    saved = [t for t, v in scores if update_best(log, t, v, eligible_from)]
    return log, saved


def test_lower_is_better_from_the_first_score():
    log, saved = run([(10, 5.0), (20, 3.0), (30, 4.0), (40, 2.5)])
    assert (log["best"], log["best_iteration"], saved) == (2.5, 40, [10, 20, 40])


def test_posthoc_dense_phase_scores_never_count():
    # Dense G scores 1.0 at t = 100; pruned at t = 200, its best is the worse 4.0 at t = 300.
    log, saved = run([(100, 1.0), (200, 6.0), (300, 4.0), (400, 5.0)], eligible_from=200)
    assert (log["best"], log["best_iteration"], saved) == (4.0, 300, [200, 300])
    assert log["best_from"] == 200


def test_no_eligible_score_leaves_no_best():
    log, saved = run([(100, 1.0)], eligible_from=200)
    assert log["best"] is None and log["best_iteration"] is None and saved == []


def test_a_dense_best_from_an_old_checkpoint_is_replaced():
    old = {**fresh_log(), "best": 1.0, "best_iteration": 100}
    log, saved = run([(300, 4.0)], eligible_from=200, log=old)
    assert (log["best"], log["best_iteration"], saved) == (4.0, 300, [300])


def test_non_finite_scores_do_not_block_later_ones():
    log, saved = run([(10, math.nan), (20, math.inf), (30, 7.0)])
    assert (log["best"], log["best_iteration"], saved) == (7.0, 30, [30])
