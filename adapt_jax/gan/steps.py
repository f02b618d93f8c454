"""Pure training steps: D step, G step with BR terms and G mask update, D mask
change, post-hoc prune. `train.py` jits each once; every schedule-dependent input (whether BR is
measured, whether G's mask is updated, drop fractions, D's target count) is a traced array, so
one compiled executable per function serves the whole run.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from adapt_jax import sparse
from adapt_jax.gan import diffaug, losses
from adapt_jax.gan.state import NetState, TrainState, iteration_key


@dataclasses.dataclass(frozen=True)
class StepConfig:
    """The static part of the steps: shapes, loss, optimizer rules."""

    z_dim: int
    num_classes: int
    batch_g: int
    loss: str
    diffaug: str
    ema: float
    g_growth: str
    g_scope: str  # 'global' (the reference's) or 'layer': how G's drop/grow ranks weights
    d_growth: str
    reset_moments_on_grow: bool
    skip_nonfinite: bool = False  # nan_policy='skip': a step with a non-finite loss is a no-op


def _apply_tx(tx: optax.GradientTransformation, net: NetState, grads: Any) -> NetState:
    updates, opt_state = tx.update(grads, net.opt_state, net.params, masks=net.masks)
    params = optax.apply_updates(net.params, updates)
    return net.replace(params=params, opt_state=opt_state)


def _all_finite(*trees: Any) -> jax.Array:
    leaves = [x for t in trees for x in jax.tree.leaves(t)]
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves]))


def _keep_if(ok: jax.Array, new: Any, old: Any) -> Any:
    """`new` where ok else `old`, leaf by leaf (None leaves stay None)."""
    return jax.tree.map(lambda n, o: jnp.where(ok, n, o), new, old)


def _note_nonfinite(state: TrainState, ok: jax.Array) -> jax.Array:
    """`state.nonfinite_at`, set to this iteration (step + 1) on its first non-finite step."""
    first = (state.nonfinite_at == 0) & ~ok
    return jnp.where(first, state.step + 1, state.nonfinite_at).astype(jnp.int32)


def _replace_masks(net: NetState, params: Any, masks: Any, reset_moments: bool) -> NetState:
    """Install new masks; optionally zero optimizer moments of newly grown entries."""
    opt_state = net.opt_state
    if reset_moments:
        opt_state = sparse.reset_moments(opt_state, sparse.grown_entries(net.masks, masks))
    return net.replace(params=params, masks=masks, opt_state=opt_state)


def data_mesh() -> Mesh:
    """A 1-D data-parallel mesh over every device of every process (the trainer's mesh)."""
    return jax.make_mesh((jax.device_count(),), ("data",),
                         axis_types=(jax.sharding.AxisType.Auto,))


class GanSteps:
    """The jittable step functions of one GAN, closed over its modules and optimizers.

    `mesh` is the data-parallel mesh the batches are sharded over (default: all devices).
    Latents drawn inside a step are pinned to its 'data' axis: nothing else in a step says how
    to split them, and XLA would otherwise run the whole generator at full batch on every device.
    """

    def __init__(self, generator, discriminator, tx_g, tx_d, cfg: StepConfig,
                 mesh: Mesh | None = None):
        self.G, self.D, self.tx_g, self.tx_d, self.cfg = generator, discriminator, tx_g, tx_d, cfg
        self.batch_sharding = NamedSharding(data_mesh() if mesh is None else mesh, P("data"))

    # -- building blocks -------------------------------------------------------------------
    def _latents(self, key: jax.Array, n: int) -> tuple[jax.Array, jax.Array | None]:
        """z (and fake class labels) for n images, split over the data axis like the reals."""
        kz, ky = jax.random.split(key)
        z = jax.random.normal(kz, (n, self.cfg.z_dim), jnp.float32)
        z = jax.lax.with_sharding_constraint(z, self.batch_sharding)
        if self.cfg.num_classes == 0:
            return z, None
        y = jax.random.randint(ky, (n,), 0, self.cfg.num_classes)
        return z, jax.lax.with_sharding_constraint(y, self.batch_sharding)

    def generate(self, g: NetState, params: Any, z, y, *, train: bool = True):
        """G forward in train mode; returns (images, updated G stats)."""
        mutable = list(g.stats) if train else False
        out = self.G.apply(g.variables(params), z, y, train=train, mutable=mutable)
        return out if train else (out, g.stats)

    def _disc(self, d: NetState, params: Any, x, y, key, update_stats: bool):
        x = diffaug.augment(key, x, self.cfg.diffaug)
        if update_stats:
            return self.D.apply(d.variables(params), x, y, update_stats=True,
                                mutable=list(d.stats))
        return self.D.apply(d.variables(params), x, y, update_stats=False), d.stats

    def _d_loss_and_grads(self, state: TrainState, reals, labels, key):
        """D hinge/ns/w loss on reals vs. a fresh fake batch; one SN power iteration."""
        kf, ka = jax.random.split(key)
        z, y_fake = self._latents(kf, reals.shape[0])
        fake, _ = self.generate(state.g, state.g.params, z, y_fake)
        fake = jax.lax.stop_gradient(fake)
        # Real and fake share one forward (one SN power iteration) and, through the shared key,
        # the same augmentation parameters.
        x = jnp.concatenate([diffaug.augment(ka, reals, self.cfg.diffaug),
                             diffaug.augment(ka, fake, self.cfg.diffaug)])
        y = None if labels is None else jnp.concatenate([labels, y_fake])
        n = reals.shape[0]

        def loss_fn(params):
            logits, stats = self.D.apply(state.d.variables(params), x, y,
                                         update_stats=True, mutable=list(state.d.stats))
            loss = losses.d_loss(self.cfg.loss, logits[:n], logits[n:])
            return loss, (stats, logits[:n], logits[n:])

        (loss, (stats, real_logits, fake_logits)), grads = jax.value_and_grad(
            loss_fn, has_aux=True)(state.d.params)
        metrics = {"d_loss": loss, "d_real": real_logits.mean(), "d_fake": fake_logits.mean()}
        return grads, stats, metrics

    # -- steps -----------------------------------------------------------------------------
    def d_step(self, state: TrainState, reals, labels, sub):
        """One discriminator update (params re-masked by keep_sparse)."""
        grads, stats, metrics = self._d_loss_and_grads(state, reals, labels,
                                                       iteration_key(state, sub))
        d = _apply_tx(self.tx_d, state.d, grads).replace(stats=stats)
        ok = _all_finite(metrics["d_loss"], grads)
        if self.cfg.skip_nonfinite:
            d = _keep_if(ok, d, state.d)
            metrics["skipped"] = ~ok
        return state.replace(d=d, nonfinite_at=_note_nonfinite(state, ok)), metrics

    def g_step(self, state: TrainState, reals, labels, sub, measure_br, update_mask,
               drop_fraction):
        """G update, optional BR terms, optional G drop/grow, then the EMA update.

        `measure_br` and `update_mask` are traced booleans (lax.cond), so this compiles once.
        """
        kz, ka, km = jax.random.split(iteration_key(state, sub), 3)
        z, y = self._latents(kz, self.cfg.batch_g)
        g, d = state.g, state.d

        def loss_fn(params):
            fake, g_stats = self.generate(g, params, z, y)
            logits, _ = self._disc(d, d.params, fake, y, ka, update_stats=False)
            return losses.g_loss(self.cfg.loss, logits), (g_stats, logits.mean())

        (g_loss, (g_stats, fake_pre)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            g.params)
        new_g = _apply_tx(self.tx_g, g, grads).replace(stats=g_stats)
        ok = _all_finite(g_loss, grads)
        if self.cfg.skip_nonfinite:
            new_g = _keep_if(ok, new_g, g)
        state = state.replace(nonfinite_at=_note_nonfinite(state, ok))

        def br_terms(_):
            # BR's numerator is a small difference of two forwards, so both come from one
            # compiled body (lax.map) at full float32 precision (TPUs and recent GPUs
            # otherwise round matmuls/convs to bfloat16/TF32): an unchanged G gives exactly 0.
            # Both use the updated G's statistics, and measuring changes nothing in training.
            with jax.default_matmul_precision("highest"):
                def disc_of_gen(params):
                    fake, _ = self.generate(new_g, params, z, y)
                    return self._disc(d, d.params, fake, y, ka, update_stats=False)[0].mean()

                pair = jax.tree.map(lambda a, b: jnp.stack([a, b]), g.params, new_g.params)
                pre_post = jax.lax.map(disc_of_gen, pair)
                real, _ = self._disc(d, d.params, reals, labels, ka, update_stats=False)
            return jnp.stack([pre_post[1], pre_post[0], real.mean(), jnp.sign(real).mean()])

        br = jax.lax.cond(measure_br, br_terms, lambda _: jnp.zeros(4, jnp.float32), None)

        def mask_update(net):
            params, masks = sparse.drop_grow(km, net.params, net.masks, grads, drop_fraction,
                                             grow=self.cfg.g_growth, scope=self.cfg.g_scope)
            return _replace_masks(net, params, masks, self.cfg.reset_moments_on_grow)

        new_g = jax.lax.cond(update_mask, mask_update, lambda net: net, new_g)
        ema = self._ema(state.ema_params, new_g, update_mask)
        metrics = {"g_loss": g_loss, "d_fake_g": fake_pre, "br_terms": br}
        return state.replace(g=new_g, ema_params=ema, step=state.step + 1), metrics

    def _ema(self, ema: Any, g: NetState, mask_changed) -> Any:
        """EMA that stays exactly sparse: masked on a mask change, then averaged."""
        ema = jax.lax.cond(mask_changed, lambda e: sparse.apply_masks(e, g.masks),
                           lambda e: e, ema)
        decay = self.cfg.ema
        return jax.tree.map(lambda e, p: decay * e + (1.0 - decay) * p, ema, g.params)

    def d_mask_update(self, state: TrainState, reals, labels, sub, target_count,
                      drop_fraction):
        """Resize D to `target_count` (grow by |grad| or random, prune by |w|), then one
        drop/grow of `drop_fraction` (0 = none). Gradients: D loss on the latest real batch."""
        grads, _, _ = self._d_loss_and_grads(state, reals, labels, iteration_key(state, sub))
        k1, k2 = jax.random.split(iteration_key(state, sub + 1))
        d = state.d
        params, masks = sparse.resize(k1, d.params, d.masks, grads, target_count,
                                      grow=self.cfg.d_growth)
        params, masks = sparse.drop_grow(k2, params, masks, grads, drop_fraction,
                                         grow=self.cfg.d_growth)
        return state.replace(d=_replace_masks(d, params, masks, self.cfg.reset_moments_on_grow))

    def g_prune(self, state: TrainState, sub, target_count):
        """Post-hoc: global magnitude prune of G (and its EMA) to `target_count`."""
        g = state.g
        params, masks = sparse.resize(iteration_key(state, sub), g.params, g.masks, None,
                                      target_count, grow="set")
        g = _replace_masks(g, params, masks, False)
        return state.replace(g=g, ema_params=sparse.apply_masks(state.ema_params, masks))
