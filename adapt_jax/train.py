"""The host loop: build the run, iterate, fire scheduled events, log, evaluate, checkpoint.

One iteration (SPEC §3-6), top to bottom in `Trainer.iteration`: n_critic D steps → G step
(BR terms, G drop/grow on schedule, EMA) → D density decision on schedule → FLOPs bookkeeping.
Everything jitted lives in `steps.py`; everything here is cheap host-side Python.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import signal
import threading
import time
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import logging
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from adapt_jax import balance, data, flops, methods, models, report, sampling, sparse
from adapt_jax import eval as evaluation
from adapt_jax.checkpoint import Checkpointer
from adapt_jax.diagnostics import SparsityDiagnostics
from adapt_jax.state import TrainState, init_net
from adapt_jax.steps import GanSteps, StepConfig
from adapt_jax.validation import ConfigError, check_workdir, validate_config

CONTROLLER_MODES = {"dda": "dda", "adapt_relax": "relax", "adapt_strict": "strict"}


class NonFiniteError(RuntimeError):
    """A loss or BR value became NaN/inf (policy 'stop')."""


def make_mesh() -> jax.sharding.Mesh:
    """A 1-D data-parallel mesh over every device of every process."""
    return jax.make_mesh((jax.device_count(),), ("data",),
                         axis_types=(jax.sharding.AxisType.Auto,))


@dataclasses.dataclass
class Schedule:
    """When the scheduled events of SPEC §2-4 fire (iterations are 1-based, T excluded)."""

    total: int
    g_every: int | None
    d_every: int | None
    br_every: int
    prune_at: int | None  # posthoc: end of the dense phase

    def g_event(self, t: int) -> bool:
        return self.g_every is not None and t % self.g_every == 0 and t != self.total

    def d_event(self, t: int) -> bool:
        return self.d_every is not None and t % self.d_every == 0 and t != self.total

    def measure_br(self, t: int) -> bool:
        return t % self.br_every == 0


class Trainer:
    """Holds the compiled steps, the device state and the host-side state of one run."""

    def __init__(self, config: ml_collections.ConfigDict, workdir: str):
        validate_config(config)
        self.config, self.workdir = config, workdir
        self.spec = methods.get_method(config.method)
        self.mesh = make_mesh()
        self.replicated = NamedSharding(self.mesh, P())
        self.gan = models.create(config.model)
        try:
            self.source = data.make_source(config.data, config.model.resolution,
                                           config.model.num_classes)
        except (ValueError, FileNotFoundError) as e:
            raise ConfigError(f"config.data: {e}") from None
        self.schedule = self._make_schedule()
        self.steps = self._make_steps()
        self.state = self._init_state()
        self.g_maskable = sparse.count_maskable(self.state.g.masks)
        self.d_maskable = sparse.count_maskable(self.state.d.masks)
        self.diagnostics = SparsityDiagnostics()
        self.diagnostics.observe(0, "g", self.state.g.masks, event=True)
        self.diagnostics.observe(0, "d", self.state.d.masks, event=True)
        self.window = balance.BalanceWindow(config.balance.window, config.balance.br_every,
                                            config.balance.criterion, config.balance.reduce)
        self.controller = self._make_controller()
        self.flops = self._make_flops()
        self.batches = self._batches(position=0)
        self.history: dict[str, list] = {"br": [], "density_d": [], "density_g": []}
        self.eval_log: dict[str, Any] = {"name": None, "best": None, "best_iteration": None,
                                         "history": []}
        self.pending_br: list[tuple[int, jax.Array]] = []
        self.t = 0

    # -- construction ----------------------------------------------------------------------
    def _make_schedule(self) -> Schedule:
        c, spec = self.config, self.spec
        total = c.train.num_iters
        prune_at = None
        if spec.posthoc:
            prune_at = total
            total += round(c.sparse.posthoc_finetune_fraction * c.train.num_iters)
        return Schedule(
            total=total,
            g_every=c.sparse.g_update_every if spec.g_dst else None,
            d_every=c.sparse.d_adjust_every if spec.d_mode != "fixed" else None,
            br_every=c.balance.br_every,
            prune_at=prune_at,
        )

    def _make_steps(self) -> dict[str, Any]:
        c = self.config
        tc = c.train
        tx_g = sparse.keep_sparse(optax.adam(tc.lr_g, tc.b1, tc.b2))
        tx_d = sparse.keep_sparse(optax.adam(tc.lr_d, tc.b1, tc.b2))
        self.tx_g, self.tx_d = tx_g, tx_d
        cfg = StepConfig(
            z_dim=self.gan.z_dim, num_classes=self.gan.num_classes, batch_g=tc.batch_g,
            loss=c.loss, diffaug=c.diffaug, ema=tc.ema,
            g_growth=self.spec.g_growth or c.sparse.g_growth, d_growth=c.sparse.d_growth,
            reset_moments_on_grow=c.sparse.reset_moments_on_grow,
            skip_nonfinite=tc.nan_policy == "skip")
        self.gan_steps = GanSteps(self.gan.generator, self.gan.discriminator, tx_g, tx_d, cfg)
        s = self.gan_steps
        return {
            "d_step": jax.jit(s.d_step, donate_argnums=0),
            "g_step": jax.jit(s.g_step, donate_argnums=0),
            "d_mask_update": jax.jit(s.d_mask_update, donate_argnums=0),
            "g_prune": jax.jit(s.g_prune, donate_argnums=0),
        }

    def _init_state(self) -> TrainState:
        c = self.config
        d_g, d_d = methods.initial_densities(c)
        if self.spec.posthoc:
            d_g = 1.0  # dense phase first; pruned at the end of it
        k_init, k_g, k_d, k_run = jax.random.split(jax.random.PRNGKey(c.seed), 4)
        g_vars, d_vars = jax.jit(self.gan.init)(k_init)  # one compile, not one per op
        g = init_net(k_g, g_vars, d_g, c.sparse.distribution, self.gan.g_is_maskable, self.tx_g)
        d = init_net(k_d, d_vars, d_d, c.sparse.distribution, self.gan.d_is_maskable, self.tx_d)
        ema = jax.tree.map(jnp.copy, g.params)  # own buffers: the state is donated
        state = TrainState(g=g, d=d, ema_params=ema, step=jnp.zeros((), jnp.int32),
                           rng=k_run)
        return jax.device_put(state, self.replicated)

    def _make_controller(self) -> balance.DensityController | None:
        c = self.config
        if self.spec.d_mode != "controlled":
            return None
        return balance.DensityController(
            mode=CONTROLLER_MODES[c.method], maskable=self.d_maskable,
            initial_count=int(sparse.count_active(self.state.d.masks)),
            d_min=c.sparse.d_min, d_max=c.sparse.d_max, delta_d=c.sparse.delta_d,
            lower=c.balance.lower, upper=c.balance.upper, window=self.window)

    def _make_flops(self) -> flops.TrainingFlops:
        c, tc = self.config, self.config.train
        self.g_layers, self.d_layers = flops.gan_layer_macs(
            self.gan, self.state.g.variables(), self.state.d.variables())
        sched = self.schedule
        return flops.TrainingFlops(
            self.g_layers, self.d_layers, batch_d=tc.batch_d, batch_g=tc.batch_g,
            n_critic=tc.n_critic, num_iters=sched.total, mode=c.eval.flops_mode,
            g_interval=sched.g_every or ((sched.prune_at, sched.total - sched.prune_at)
                                         if self.spec.posthoc else None),
            d_interval=sched.d_every,
            g_densities=self._layer_densities("g"), d_densities=self._layer_densities("d"))

    def _layer_densities(self, net: str) -> dict[str, float]:
        masks = self.state.g.masks if net == "g" else self.state.d.masks
        return sparse.density_stats(masks)["layers"]

    def _batches(self, position: int) -> data.BatchIterator:
        """Every process slices the same global permutation: same data for any host count."""
        return data.BatchIterator(self.source, self.config.train.batch_d, seed=self.config.seed,
                                  flip=self.config.data.flip, position=position,
                                  process_index=jax.process_index(),
                                  process_count=jax.process_count())

    # -- host state (checkpointed as JSON) -------------------------------------------------
    def host_state(self) -> dict[str, Any]:
        return {
            "t": self.t,
            "data_position": self.batches.position,
            "window": self.window.to_dict(),
            "controller": None if self.controller is None else self.controller.to_dict(),
            "flops": self.flops.to_dict(),
            "history": self.history,
            "eval": self.eval_log,
            "diagnostics": self.diagnostics.to_dict(),
            "config": self.config.to_json_best_effort(),
        }

    def load_host_state(self, host: dict[str, Any]) -> None:
        self.t = int(host["t"])
        self.batches = self._batches(position=int(host["data_position"]))
        self.window.load_dict(host["window"])
        if self.controller is not None:
            self.controller.load_dict(host["controller"])
        self.flops = flops.TrainingFlops.from_dict(host["flops"], self.g_layers, self.d_layers)
        self.history = {k: [tuple(x) for x in v] for k, v in host["history"].items()}
        self.eval_log = host["eval"]
        if "diagnostics" in host:
            self.diagnostics.load_dict(host["diagnostics"])

    # -- one iteration ---------------------------------------------------------------------
    def _next_batch(self) -> tuple[jax.Array, jax.Array | None]:
        images, labels = self.batches.next()
        x = data.to_global(self.mesh, images)
        y = data.to_global(self.mesh, labels) if self.gan.num_classes else None
        return x, y

    def iteration(self) -> dict[str, jax.Array]:
        """Run iteration t = self.t + 1 and its scheduled events; returns device metrics."""
        t = self.t + 1
        c, sched = self.config, self.schedule
        n_critic = c.train.n_critic
        metrics: dict[str, jax.Array] = {}
        for i in range(n_critic):
            reals, labels = self._next_batch()
            if t == c.train.inject_nan_at:
                reals = reals * jnp.nan
            self.state, metrics = self.steps["d_step"](self.state, reals, labels, jnp.int32(i))
        g_event = sched.g_event(t)
        measure = sched.measure_br(t)
        drop = sparse.drop_fraction_schedule(c.sparse.g_drop_schedule,
                                             c.sparse.g_drop_fraction, sched.total)(t)
        self.state, g_metrics = self.steps["g_step"](
            self.state, reals, labels, jnp.int32(n_critic), jnp.bool_(measure),
            jnp.bool_(g_event), jnp.float32(drop))
        metrics = {**metrics, **g_metrics}
        if measure:
            self.pending_br.append((t, g_metrics["br_terms"]))
        d_event = sched.d_event(t)
        if d_event:
            self._d_event(t, reals, labels)
        if sched.prune_at == t:
            target = round(c.sparse.density_g * self.g_maskable)
            self.state = self.steps["g_prune"](self.state, jax.random.PRNGKey(t),
                                               jnp.int32(target))
        g_changed = g_event or sched.prune_at == t
        self.flops.iteration(
            t, self._layer_densities("g") if g_changed else None,
            self._layer_densities("d") if d_event else None,
            br_measured=measure, g_event=g_changed, d_event=d_event)
        if d_event or t == 1:
            self.history["density_d"].append((t, self._density("d")))
        if g_changed or t == 1:
            self.history["density_g"].append((t, self._density("g")))
        self.diagnostics.observe(t, "g", self.state.g.masks, event=g_changed)
        self.diagnostics.observe(t, "d", self.state.d.masks, event=d_event)
        self.t = t
        return metrics

    def _density(self, net: str) -> float:
        masks = self.state.g.masks if net == "g" else self.state.d.masks
        return float(sparse.count_active(masks)) / sparse.count_maskable(masks)

    def flush_br(self) -> None:
        """Move pending BR terms to the host window (one transfer for many iterations)."""
        if not self.pending_br:
            return
        values = jax.device_get([v for _, v in self.pending_br])
        for (t, _), v in zip(self.pending_br, values, strict=True):
            fake_post, fake_pre, real, real_sign = (float(x) for x in v)
            if not np.isfinite([fake_post, fake_pre, real]).all():
                if self.config.train.nan_policy == "stop":
                    self._non_finite(t, "BR terms")
                self.window.skipped += 1
                continue
            self.window.add(balance.Measurement(t, fake_post, fake_pre, real, real_sign))
            self.history["br"].append((t, self.window.value()))
        self.pending_br = []

    def check_finite(self, metrics: dict[str, jax.Array]) -> dict[str, float]:
        """Host copy of the scalar metrics; raises NonFiniteError under nan_policy='stop'."""
        m, at = jax.device_get(({k: v for k, v in metrics.items() if k != "br_terms"},
                                self.state.nonfinite_at))
        if self.config.train.nan_policy == "stop" and int(at):
            self._non_finite(int(at), "loss or gradients")
        return {k: float(v) for k, v in m.items()}

    def _non_finite(self, t: int, what: str) -> None:
        raise NonFiniteError(
            f"Non-finite {what} at iteration {t}. The last good checkpoint in "
            f"{self.workdir}/checkpoints is intact; lower the learning rates or set "
            "--config.train.nan_policy=skip to skip such steps.")

    def _d_event(self, t: int, reals, labels) -> None:
        """Scheduled D density decision (controlled) or plain D DST (dst_both)."""
        c, sched = self.config, self.schedule
        count = int(sparse.count_active(self.state.d.masks))
        drop = 0.0
        if self.controller is not None:
            self.flush_br()
            decision = self.controller.decide(t)
            logging.info("t=%d D decision %s (criterion %.4f): %d -> %d active", t,
                         decision.action, decision.value, decision.old_count,
                         decision.new_count)
            count = decision.new_count
            if decision.action == "dst":
                drop = sparse.drop_fraction_schedule(
                    "cosine", c.sparse.d_dst_drop_fraction, sched.total)(t)
            elif decision.action not in ("increase", "decrease"):
                return
        else:  # dst_both
            drop = sparse.drop_fraction_schedule(
                "cosine", c.sparse.dst_both_d_drop_fraction, sched.total)(t)
        self.state = self.steps["d_mask_update"](
            self.state, reals, labels, jnp.int32(c.train.n_critic + 1), jnp.int32(count),
            jnp.float32(drop))

    # -- sampling --------------------------------------------------------------------------
    def sample(self, key: jax.Array, n: int, labels: np.ndarray | None = None) -> np.ndarray:
        """n uint8 images from the EMA generator (batch statistics unless eval.bn='running')."""
        if not hasattr(self, "_generate_fn"):
            self._generate_fn = sampling.make_generate_fn(self.gan.generator,
                                                          self.config.eval.bn == "batch")
        return sampling.sample(self._generate_fn, self.state.ema_params, self.state.g.stats,
                               z_dim=self.gan.z_dim, num_classes=self.gan.num_classes,
                               key=key, num=n, batch_size=self.config.eval.batch_size,
                               labels=labels, mesh=self.mesh)


def _evaluate(trainer: Trainer, evaluator, t: int) -> tuple[dict[str, float], bool]:
    """Score the EMA generator; returns (scores, whether it is the best so far)."""
    key = jax.random.PRNGKey(trainer.config.seed + 7919 * t)
    batch_index = itertools.count()  # the evaluator asks batch by batch: each must be new z

    def generate(n: int) -> np.ndarray:
        return trainer.sample(jax.random.fold_in(key, next(batch_index)), n)

    scores = evaluator.evaluate(generate)
    log = trainer.eval_log
    value = scores[evaluator.name]
    log["name"] = evaluator.name
    log["history"].append([t, scores])
    improved = log["best"] is None or value < log["best"]
    if improved:
        log["best"], log["best_iteration"] = value, t
    logging.info("t=%d %s: %s", t, evaluator.description, scores)
    return scores, improved


def _grid_labels(num_classes: int, n: int) -> np.ndarray | None:
    return None if num_classes == 0 else np.arange(n) % num_classes


def _log_scalars(trainer: Trainer, metrics: dict[str, jax.Array], its: float) -> dict:
    scalars = trainer.check_finite(metrics)
    trainer.flush_br()
    scalars["br_avg"] = trainer.window.value()
    if trainer.window.items:
        last = trainer.window.items[-1]  # under ada_rt the |beta| guard does not filter
        scalars["br"] = last.ratio() if last.beta != 0.0 else float("nan")
    scalars["br_skipped"] = trainer.window.skipped
    scalars["density_g"] = trainer._density("g")
    scalars["density_d"] = trainer._density("d")
    for net, v in trainer.flops.normalized().items():
        scalars[f"flops_normalized_{net}"] = v
    scalars.update(trainer.diagnostics.scalars())
    scalars["iterations_per_sec"] = its
    return scalars


class _DetailWriter:
    """TensorBoard-only scalars too many or too sparse for the console line: per-layer
    densities, controller decisions and mask events (process 0 only; a second event file in
    the workdir, which TensorBoard reads as the same run)."""

    def __init__(self, trainer: Trainer, workdir: str):
        from clu import metric_writers

        self.trainer = trainer
        self.writer = (metric_writers.SummaryWriter(workdir) if jax.process_index() == 0
                       else None)
        self.logged = _event_counts(trainer)  # a resumed run logged these before
        self._densities_at: dict[str, int] | None = None  # event counts when last written

    def layer_densities(self, t: int) -> None:
        """Per-layer densities, read from the device only when a mask event happened since."""
        counts = _event_counts(self.trainer)
        if self.writer is None or counts == self._densities_at:
            return
        self._densities_at = counts
        self.writer.write_scalars(t, {f"layer_density/{net}/{layer}": v for net in ("g", "d")
                                      for layer, v in self.trainer._layer_densities(net).items()})

    def events(self) -> None:
        """Each controller decision and mask event not yet written, at its own iteration."""
        if self.writer is not None:
            _write_events(self.trainer, self.writer, self.logged)
            self.writer.flush()
        self.logged = _event_counts(self.trainer)


# TensorBoard codes of the controller's actions ('wait': the window was not full yet).
ACTION_CODES = {"decrease": -1.0, "none": 0.0, "increase": 1.0, "dst": 2.0, "wait": float("nan")}


def _event_counts(trainer: Trainer) -> dict[str, int]:
    """How many controller decisions and mask events (per net) the trainer holds so far."""
    counts = {net: len(track.history) for net, track in trainer.diagnostics.nets.items()}
    counts["decisions"] = 0 if trainer.controller is None else len(trainer.controller.decisions)
    return counts


def _write_events(trainer: Trainer, writer, logged: dict[str, int]) -> None:
    """Each controller decision and mask event not yet in `logged`, at its own iteration: the
    periodic scalars show only the latest of them. Both live in checkpointed host state, so
    a resumed run (starting from `_event_counts`) writes only new ones."""
    decisions = [] if trainer.controller is None else trainer.controller.decisions
    for d in decisions[logged.get("decisions", 0):]:
        writer.write_scalars(d.t, {"controller/action": ACTION_CODES.get(d.action, float("nan")),
                                   "controller/criterion": d.value,
                                   "controller/d_density": d.new_count / trainer.d_maskable})
    for net, track in trainer.diagnostics.nets.items():
        for t, itop, flip in track.history[max(1, logged.get(net, 0)):]:
            writer.write_scalars(t, {f"mask_events/itop_{net}": itop,
                                     f"mask_events/flip_rate_{net}": flip})


def run(config: ml_collections.ConfigDict, workdir: str,
        stop_after: int | None = None) -> dict[str, Any] | None:
    """Train (or resume) the run in `workdir`; returns the summary written to summary.json.

    `stop_after=N` (or SIGTERM/SIGINT) ends this process after iteration N with a checkpoint,
    to be resumed by the same call; then None is returned.
    """
    from clu import metric_writers, periodic_actions

    validate_config(config)
    check_workdir(config, workdir)
    trainer = Trainer(config, workdir)
    tc, sched = config.train, trainer.schedule
    ckpt = Checkpointer(os.path.join(workdir, "checkpoints"), keep=tc.keep_checkpoints)
    restored = ckpt.restore_latest(trainer.state)
    if restored is not None:
        step, state, host = restored
        trainer.state = jax.device_put(state, trainer.replicated)
        trainer.load_host_state(host)
        logging.info("Resumed %s from iteration %d.", workdir, step)
    writer = metric_writers.create_default_writer(workdir, just_logging=jax.process_index() > 0)
    progress = periodic_actions.ReportProgress(num_train_steps=sched.total, writer=writer,
                                               every_secs=30.0)
    evaluator = evaluation.create_evaluator(
        config.eval, trainer.source, config.eval.cache_dir or os.path.join(workdir, "eval_cache"))
    best_ckpt = Checkpointer(os.path.join(workdir, "checkpoints_best"), keep=1)
    grid_n = 100 if trainer.gan.num_classes in (0, 10) else 64
    grid_key = jax.random.PRNGKey(config.seed + 12345)
    grid_labels = _grid_labels(trainer.gan.num_classes, grid_n)
    t0, t_start, started = time.time(), trainer.t, time.time()
    detail = _DetailWriter(trainer, workdir)
    stop = _StopRequest()
    while trainer.t < sched.total:
        metrics = trainer.iteration()
        t = trainer.t
        if stop.requested or t == stop_after:
            trainer.check_finite(metrics)
            trainer.flush_br()
            detail.events()  # the resumed run starts after them
            writer.flush()
            ckpt.save(t, trainer.state, trainer.host_state())
            ckpt.close()
            best_ckpt.close()
            stop.restore()
            logging.warning("Stopped after iteration %d with a checkpoint; run the same "
                            "command again to resume.", t)
            return None
        progress(t)
        if t % tc.log_every == 0 or t == sched.total:
            its = (t - t_start) / max(time.time() - t0, 1e-9)
            t0, t_start = time.time(), t
            writer.write_scalars(t, _log_scalars(trainer, metrics, its))
            detail.layer_densities(t)
            detail.events()
        if t % tc.sample_every == 0 or t == sched.total:
            grid = report.image_grid(trainer.sample(grid_key, grid_n, grid_labels), cols=10)
            writer.write_images(t, {"samples": grid[None]})
        if t % config.eval.every == 0 or t == sched.total:
            trainer.check_finite(metrics)
            scores, improved = _evaluate(trainer, evaluator, t)
            writer.write_scalars(t, {f"eval/{k}": v for k, v in scores.items()})
            if improved:
                best_ckpt.save(t, trainer.state, trainer.host_state())
            log = trainer.eval_log
            writer.write_scalars(t, {f"eval/best_{log['name']}": log["best"],
                                     "eval/best_iteration": log["best_iteration"]})
        if t % tc.ckpt_every == 0 or t == sched.total:
            trainer.check_finite(metrics)  # never overwrite a good checkpoint with NaNs
            trainer.flush_br()
            # Everything the checkpoint holds is logged: a resumed run logs only what follows.
            detail.events()
            ckpt.save(t, trainer.state, trainer.host_state())
    ckpt.close()
    best_ckpt.close()
    stop.restore()
    trainer.flush_br()
    detail.events()
    summary = _finish(trainer, grid_key, grid_n, grid_labels, time.time() - started)
    writer.flush()
    return summary


class _StopRequest:
    """SIGTERM/SIGINT (preemption, Ctrl-C) → finish the current iteration, checkpoint, exit."""

    def __init__(self):
        self.requested = False
        self._old = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._old[sig] = signal.signal(sig, self._handle)

    def _handle(self, signum, frame) -> None:
        self.requested = True

    def restore(self) -> None:
        for sig, handler in self._old.items():
            signal.signal(sig, handler)


def _finish(trainer: Trainer, key, grid_n: int, grid_labels, seconds: float) -> dict[str, Any]:
    """samples.png, balance.png and summary.json in the workdir."""
    c, wd = trainer.config, trainer.workdir
    grid = report.image_grid(trainer.sample(key, grid_n, grid_labels), cols=10)
    report.save_png(os.path.join(wd, "samples.png"), grid, scale=2)
    report.plot_balance(os.path.join(wd, "balance.png"), trainer.history["br"],
                        (c.balance.lower, c.balance.upper), trainer.history["density_d"],
                        criterion="BR" if c.balance.criterion == "br" else "r_t")
    decisions = [] if trainer.controller is None else [
        dataclasses.asdict(d) for d in trainer.controller.decisions]
    summary = {
        "method": c.method,
        "strategy": c.strategy,
        "iterations": trainer.t,
        "density_g": trainer._density("g"),
        "density_d": trainer._density("d"),
        "br_avg": trainer.window.value(),
        "br_skipped": trainer.window.skipped,
        "flops_mode": c.eval.flops_mode,
        "flops_normalized": trainer.flops.normalized(),
        "d_decisions": decisions,
        "eval": trainer.eval_log,
        "sparsity": trainer.diagnostics.summary(),
        "seconds_this_process": seconds,
        "workdir": os.path.abspath(wd),
    }
    with open(os.path.join(wd, "layer_density.md"), "w") as f:
        f.write(trainer.diagnostics.layer_table())
    report.write_json_atomic(os.path.join(wd, "summary.json"), summary)
    return summary
