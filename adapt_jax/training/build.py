"""Everything a run is built from, constructed in one visible order into a frozen bundle.

`build(config)` returns `Components`: nothing in it changes during training, so the loop, the
trainer and the tools can share it without hidden setup order. The mutable parts of a run are
the device `TrainState` (`init_state`) and the host state (`host_state.HostState`).
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import optax
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from adapt_jax import data, models, sparse
from adapt_jax.config_base import ConfigError
from adapt_jax.gan import methods
from adapt_jax.gan.state import SubKeys, TrainState, init_net
from adapt_jax.gan.steps import GanSteps, StepConfig
from adapt_jax.models import macs
from adapt_jax.training import distributed


def make_mesh() -> jax.sharding.Mesh:
    """A 1-D data-parallel mesh over every device of every process."""
    return jax.make_mesh((jax.device_count(),), ("data",),
                         axis_types=(jax.sharding.AxisType.Auto,))


@dataclasses.dataclass(frozen=True)
class Schedule:
    """When the scheduled events fire (iterations are 1-based; none fires at the last one)."""

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


class CompiledSteps(NamedTuple):
    """The jitted step functions (each compiled once per run; the state is donated)."""

    d_step: Any
    g_step: Any
    d_mask_update: Any
    g_prune: Any


@dataclasses.dataclass(frozen=True)
class Components:
    """The immutable parts of one run."""

    config: ml_collections.ConfigDict
    method: methods.MethodSpec
    mesh: jax.sharding.Mesh
    gan: models.GAN
    source: data.Source
    schedule: Schedule
    tx_g: optax.GradientTransformation
    tx_d: optax.GradientTransformation
    gan_steps: GanSteps
    steps: CompiledSteps
    sub_keys: SubKeys

    @property
    def replicated(self) -> NamedSharding:
        return NamedSharding(self.mesh, P())


def make_schedule(config: ml_collections.ConfigDict, spec: methods.MethodSpec) -> Schedule:
    total = config.train.num_iters
    prune_at = None
    if spec.posthoc:
        prune_at = total
        total += round(config.sparse.posthoc_finetune_fraction * config.train.num_iters)
    return Schedule(
        total=total,
        g_every=config.sparse.g_update_every if spec.g_dst else None,
        d_every=config.sparse.d_adjust_every if spec.d_mode != "fixed" else None,
        br_every=config.balance.br_every,
        prune_at=prune_at,
    )


def build(config: ml_collections.ConfigDict) -> Components:
    """Construct every component of the run described by a validated config."""
    spec = methods.get_method(config.method)
    gan = models.create(config.model)
    try:
        source = data.make_source(config.data, config.model.resolution,
                                  config.model.num_classes, batch_size=config.train.batch_d)
    except (ValueError, FileNotFoundError) as e:
        raise ConfigError(f"config.data: {e}") from None
    tc = config.train
    g_growth, d_growth = methods.growth_rules(config)
    tx_g = sparse.keep_sparse(optax.adam(tc.lr_g, tc.b1, tc.b2))
    tx_d = sparse.keep_sparse(optax.adam(tc.lr_d, tc.b1, tc.b2))
    step_config = StepConfig(
        z_dim=gan.z_dim, num_classes=gan.num_classes, batch_g=tc.batch_g,
        loss=config.loss, diffaug=config.diffaug, ema=tc.ema,
        g_growth=g_growth, g_scope=config.sparse.g_scope, d_growth=d_growth,
        reset_moments_on_grow=config.sparse.reset_moments_on_grow,
        skip_nonfinite=tc.nan_policy == "skip")
    gan_steps = GanSteps(gan.generator, gan.discriminator, tx_g, tx_d, step_config)
    steps = CompiledSteps(
        d_step=jax.jit(gan_steps.d_step, donate_argnums=0),
        g_step=jax.jit(gan_steps.g_step, donate_argnums=0),
        d_mask_update=jax.jit(gan_steps.d_mask_update, donate_argnums=0),
        g_prune=jax.jit(gan_steps.g_prune, donate_argnums=0))
    return Components(config=config, method=spec, mesh=make_mesh(), gan=gan, source=source,
                      schedule=make_schedule(config, spec), tx_g=tx_g, tx_d=tx_d,
                      gan_steps=gan_steps, steps=steps, sub_keys=SubKeys(tc.n_critic))


def init_state(c: Components) -> TrainState:
    """The replicated device state at iteration 0 (initial masks at the method's densities)."""
    config = c.config
    d_g, d_d = methods.initial_densities(config)
    if c.method.posthoc:
        d_g = 1.0  # dense phase first; pruned at the end of it
    if calibrates_band(c):
        d_d = config.sparse.d_max  # the warm-up that calibrates the band runs D at d_max
    k_init, k_g, k_d, k_run = jax.random.split(jax.random.PRNGKey(config.seed), 4)
    g_vars, d_vars = jax.jit(c.gan.init)(k_init)  # one compile, not one per op
    dist = config.sparse.distribution
    g = init_net(k_g, g_vars, d_g, dist, c.gan.g_is_maskable, c.tx_g)
    d = init_net(k_d, d_vars, d_d, dist, c.gan.d_is_maskable, c.tx_d)
    ema = jax.tree.map(jnp.copy, g.params)  # own buffers: the state is donated
    state = TrainState(g=g, d=d, ema_params=ema, step=jnp.zeros((), jnp.int32), rng=k_run)
    distributed.wait_for_all_processes("adapt_jax.initial_state")  # before the first collective
    return jax.device_put(state, c.replicated)


def calibrates_band(c: Components) -> bool:
    """Whether this run's controller starts with a warm-up that calibrates its band."""
    return c.config.balance.band == "calibrated" and c.method.d_mode == "controlled"


def layer_macs(c: Components, state: TrainState) -> tuple[list, list]:
    """Per-sample MACs of every layer of G and D (the FLOPs accountant's input)."""
    return macs.gan_layer_macs(c.gan, state.g.variables(), state.d.variables())
