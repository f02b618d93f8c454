"""One run's iteration: D steps → G step (BR terms, G drop/grow, EMA) → D density decision on
schedule → post-hoc prune → FLOPs and mask bookkeeping (docs/design.md, "One iteration").

Everything jitted lives in `steps.py`; everything here is cheap host-side Python. The trainer
holds the run's two mutable parts, the device `state` and the `host` state, beside the frozen
`components` they were built from.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging

from adapt_jax import data, sparse
from adapt_jax.gan import balance
from adapt_jax.models import sampling
from adapt_jax.training.build import Components, build, init_state, layer_macs
from adapt_jax.training.host_state import HostState
from adapt_jax.training.validation import validate_config


class NonFiniteError(RuntimeError):
    """A loss or BR value became NaN/inf (policy 'stop')."""


class Trainer:
    """The components, device state and host state of one run, and its iteration."""

    def __init__(self, config: ml_collections.ConfigDict, workdir: str):
        validate_config(config)
        self.workdir = workdir
        self.components: Components = build(config)
        self.state = init_state(self.components)
        self.layers = layer_macs(self.components, self.state)
        self.host = HostState.create(self.components, self.state, self.layers)
        self.batches = self._batches(position=0)
        self.pending_br: list[tuple[int, jax.Array]] = []
        self._generate_fn = None

    @property
    def config(self) -> ml_collections.ConfigDict:
        return self.components.config

    @property
    def t(self) -> int:
        """Completed iterations."""
        return self.host.t

    def restore(self, state, host: dict) -> None:
        """Continue from a checkpoint's device state and host state."""
        self.state = jax.device_put(state, self.components.replicated)
        self.host.load_dict(host, self.layers)
        self.batches = self._batches(position=self.host.data_position)

    def host_state_dict(self) -> dict:
        self.host.data_position = self.batches.position
        return self.host.to_dict(self.config.to_json_best_effort())

    def _batches(self, position: int) -> data.BatchIterator:
        """Every process slices the same global permutation: same data for any host count."""
        c = self.config
        return data.BatchIterator(self.components.source, c.train.batch_d, seed=c.seed,
                                  flip=c.data.flip, position=position,
                                  process_index=jax.process_index(),
                                  process_count=jax.process_count())

    def next_batch(self) -> tuple[jax.Array, jax.Array | None]:
        images, labels = self.batches.next()
        mesh = self.components.mesh
        x = data.to_global(mesh, images)
        y = data.to_global(mesh, labels) if self.components.gan.num_classes else None
        return x, y

    # -- one iteration ---------------------------------------------------------------------
    def iteration(self) -> dict[str, jax.Array]:
        """Run iteration t = self.t + 1 and its scheduled events; returns device metrics."""
        c = self.components
        config, sched, steps, keys = c.config, c.schedule, c.steps, c.sub_keys
        t = self.t + 1
        metrics: dict[str, jax.Array] = {}
        for i in range(config.train.n_critic):
            reals, labels = self.next_batch()
            if t == config.train.inject_nan_at:
                reals = reals * jnp.nan
            self.state, metrics = steps.d_step(self.state, reals, labels,
                                               jnp.int32(keys.d_step(i)))
        g_event = sched.g_event(t)
        measure = sched.measure_br(t)
        drop = (float(sparse.drop_fraction_schedule(config.sparse.g_drop_schedule,
                                                    config.sparse.g_drop_fraction,
                                                    sched.total)(t)) if g_event else 0.0)
        self.state, g_metrics = steps.g_step(
            self.state, reals, labels, jnp.int32(keys.g_step), jnp.bool_(measure),
            jnp.bool_(g_event), jnp.float32(drop))
        metrics = {**metrics, **g_metrics}
        if measure:
            self.pending_br.append((t, g_metrics["br_terms"]))
        d_event = sched.d_event(t)
        if d_event:
            self._d_event(t, reals, labels)
        if sched.prune_at == t:
            target = round(config.sparse.density_g * self.maskable("g"))
            self.state = steps.g_prune(self.state, jnp.int32(keys.g_prune), jnp.int32(target))
        g_changed = g_event or sched.prune_at == t
        self._masks_changed(t, g_changed, d_event)
        self.host.t = t
        return metrics

    def _masks_changed(self, t: int, g_changed: bool, d_changed: bool) -> None:
        """Mask bookkeeping of iteration t: masks leave the device once per event."""
        host = self.host
        diag = host.diagnostics
        diag.observe(t, "g", self.state.g.masks, event=g_changed)
        diag.observe(t, "d", self.state.d.masks, event=d_changed)
        host.flops.iteration(
            t, diag.layer_densities("g") if g_changed else None,
            diag.layer_densities("d") if d_changed else None,
            br_measured=self.components.schedule.measure_br(t), g_event=g_changed,
            d_event=d_changed)
        if d_changed or t == 1:
            host.history["density_d"].append((t, diag.density("d")))
        if g_changed or t == 1:
            host.history["density_g"].append((t, diag.density("g")))

    def _d_event(self, t: int, reals, labels) -> None:
        """Scheduled D density decision (controlled) or plain D DST (dst_both)."""
        c = self.components
        config, sched = c.config, c.schedule
        count = self.host.diagnostics.active("d")
        controller = self.host.controller
        drop = 0.0
        if controller is not None:
            self.flush_br()
            decision = controller.decide(t)
            logging.info("t=%d D decision %s (criterion %.4f): %d -> %d active", t,
                         decision.action, decision.value, decision.old_count,
                         decision.new_count)
            if decision.action == "calibrate":
                logging.info("t=%d calibrated band [%.4f, %.4f] around the BR of D at d_max.",
                             t, controller.lower, controller.upper)
            count = decision.new_count
            if decision.action == "dst":
                drop = sparse.drop_fraction_schedule(
                    "cosine", config.sparse.d_dst_drop_fraction, sched.total)(t)
            elif decision.action not in ("increase", "decrease", "calibrate"):
                return
        else:  # dst_both
            drop = sparse.drop_fraction_schedule(
                "cosine", config.sparse.dst_both_d_drop_fraction, sched.total)(t)
        self.state = c.steps.d_mask_update(
            self.state, reals, labels, jnp.int32(c.sub_keys.d_mask_update), jnp.int32(count),
            jnp.float32(drop))

    # -- host views ------------------------------------------------------------------------
    def maskable(self, net: str) -> int:
        return self.host.diagnostics.maskable(net)

    def density(self, net: str) -> float:
        return self.host.diagnostics.density(net)

    def band(self) -> tuple[float, float] | None:
        """The controller's band in force (None for methods without one)."""
        controller = self.host.controller
        return None if controller is None else (controller.lower, controller.upper)

    def flush_br(self) -> None:
        """Move pending BR terms to the host window (one transfer for many iterations)."""
        if not self.pending_br:
            return
        values = jax.device_get([v for _, v in self.pending_br])
        window = self.host.window
        for (t, _), v in zip(self.pending_br, values, strict=True):
            fake_post, fake_pre, real, real_sign = (float(x) for x in v)
            if not np.isfinite([fake_post, fake_pre, real]).all():
                if self.config.train.nan_policy == "stop":
                    self._non_finite(t, "BR terms")
                window.skipped += 1
                continue
            window.add(balance.Measurement(t, fake_post, fake_pre, real, real_sign))
            self.host.history["br"].append((t, window.value()))
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

    def sample(self, key: jax.Array, n: int, labels: np.ndarray | None = None) -> np.ndarray:
        """n uint8 images from the EMA generator (batch statistics unless eval.bn='running')."""
        c = self.components
        if self._generate_fn is None:
            self._generate_fn = sampling.make_generate_fn(c.gan.generator,
                                                          self.config.eval.bn == "batch")
        return sampling.sample(self._generate_fn, self.state.ema_params, self.state.g.stats,
                               z_dim=c.gan.z_dim, num_classes=c.gan.num_classes,
                               key=key, num=n, batch_size=self.config.eval.batch_size,
                               labels=labels, mesh=c.mesh)
