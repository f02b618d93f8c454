"""The training loop: resume, iterate, log, sample, evaluate and checkpoint on schedule, stop
cleanly on SIGTERM/SIGINT, and finish the run."""

from __future__ import annotations

import time
from typing import Any

import jax
import ml_collections
from absl import logging

from adapt_jax import evaluation
from adapt_jax.rundir import RunDir
from adapt_jax.training import compile_cache, events, outputs, workdir_lock, writers
from adapt_jax.training.checkpoint import Checkpointer
from adapt_jax.training.console import RunConsole
from adapt_jax.training.preemption import StopRequest
from adapt_jax.training.trainer import Trainer
from adapt_jax.training.validation import check_workdir, validate_config


def run(config: ml_collections.ConfigDict, workdir: str,
        stop_after: int | None = None) -> dict[str, Any] | None:
    """Train (or resume) the run in `workdir`; returns the summary written to summary.json.

    `stop_after=N` (or SIGTERM/SIGINT) ends this process after iteration N with a checkpoint,
    to be resumed by the same call; then None is returned.
    """
    validate_config(config)
    compile_cache.enable(config.train.compilation_cache)
    with workdir_lock.hold(workdir) as lock:  # one run per workdir (process 0 holds it)
        check_workdir(config, workdir)
        return _run_locked(config, workdir, stop_after, lock)


def _run_locked(config: ml_collections.ConfigDict, workdir: str, stop_after: int | None,
                lock) -> dict[str, Any] | None:
    rundir = RunDir(workdir)
    trainer = Trainer(config, workdir)
    tc, sched = config.train, trainer.components.schedule
    ckpt = Checkpointer(rundir.checkpoints, keep=tc.keep_checkpoints)
    restored = ckpt.restore_latest(trainer.state)
    if restored is not None:
        step, state, host = restored
        trainer.restore(state, host)
        logging.info("Resumed %s from iteration %d.", workdir, step)
    # Every scalar goes to TensorBoard (process 0); the console gets the bar and a short line.
    writer = writers.create_writer(workdir, jax.process_index(), log_level=None)
    console = RunConsole(sched.total, criterion=config.balance.criterion,
                         bar=jax.process_index() == 0)
    evaluator = evaluation.create_evaluator(config.eval, trainer.components.source,
                                            config.eval.cache_dir or rundir.eval_cache)
    best_ckpt = Checkpointer(rundir.best_checkpoints, keep=1)
    grid = outputs.SampleGrid.for_run(config.seed, trainer.components.gan.num_classes)
    detail = events.DetailWriter(trainer, workdir)
    stop = StopRequest()

    def save_checkpoint(metrics: dict[str, jax.Array]) -> None:
        trainer.check_finite(metrics)  # never overwrite a good checkpoint with NaNs
        trainer.flush_br()
        detail.events()  # everything the checkpoint holds is logged: a resume logs what follows
        ckpt.save(trainer.t, trainer.state, trainer.host_state_dict())

    def evaluate_and_keep_best(t: int) -> None:
        """Score iteration t; a failing evaluation is logged and training goes on (the run's
        state is never hostage to its metrics)."""
        try:
            scores, improved = outputs.evaluate(trainer, evaluator, t)
        except Exception as e:  # noqa: BLE001 - any evaluator failure must not stop training
            logging.error("Evaluation at iteration %d failed (%s: %s); training goes on.", t,
                          type(e).__name__, e)
            return
        console.status(t, last_scalars, scores)
        writer.write_scalars(t, {f"eval/{k}": v for k, v in scores.items()})
        log = trainer.host.eval_log
        if improved:
            best_ckpt.save_best(t, trainer.state, trainer.host_state_dict(), score=log.best)
        if log.best is not None:  # post-hoc: no best before the prune
            writer.write_scalars(t, {f"eval/best_{log.name}": log.best,
                                     "eval/best_iteration": log.best_iteration})

    def close() -> None:
        console.close()
        ckpt.close()
        best_ckpt.close()
        stop.restore()

    t0, t_start, started = time.time(), trainer.t, time.time()
    last_scalars: dict[str, float] = {}
    while trainer.t < sched.total:
        metrics = trainer.iteration()
        t = trainer.t
        lock.refresh()
        if stop.should_stop(t) or t == stop_after:
            save_checkpoint(metrics)
            writer.flush()
            close()
            logging.warning("Stopped after iteration %d with a checkpoint; run the same "
                            "command again to resume.", t)
            return None
        console.iteration(t)
        last = t == sched.total
        if t % tc.log_every == 0 or last:
            its = (t - t_start) / max(time.time() - t0, 1e-9)
            t0, t_start = time.time(), t
            last_scalars = events.periodic_scalars(trainer, metrics, its)
            writer.write_scalars(t, last_scalars)
            console.band = trainer.band()
            if t % config.eval.every and not last:  # an evaluation prints its own line
                console.status(t, last_scalars)
            detail.layer_densities(t)
            detail.events()
        if t % tc.sample_every == 0 or last:
            writer.write_images(t, {"samples": grid.image(trainer)[None]})
        # Regular checkpoints come before the evaluation (nothing hangs on a score); the last
        # one after it, so a run extended later (a larger train.num_iters) keeps its final
        # evaluation. A failing evaluation is caught, so the last checkpoint is always written.
        if t % tc.ckpt_every == 0 and not last:
            save_checkpoint(metrics)
        if t % config.eval.every == 0 or last:
            trainer.check_finite(metrics)
            evaluate_and_keep_best(t)
        if last:
            save_checkpoint(metrics)
    if not trainer.host.eval_log.evaluated(sched.total):
        evaluate_and_keep_best(sched.total)  # resumed after a stop in the last iteration
    close()
    trainer.flush_br()
    detail.events()
    summary = outputs.finish(trainer, grid, time.time() - started)
    writer.flush()
    return summary
