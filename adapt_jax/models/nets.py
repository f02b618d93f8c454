"""The generic ResNet generator / discriminator every registered model instantiates, the `GAN`
bundle the trainer receives, and the maskability rule (docs/design.md §1).

All paper models (SNGAN-32, ResNet-48, BigGAN-32, BigGAN-64) differ only in widths, norm type,
init scheme, spectral norm, attention and pooling, so one G and one D with those knobs keeps
the architectures in one place.
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp

from adapt_jax.models import layers
from adapt_jax.models.layers import LayerSpec

Array = jax.Array

# resolution -> (bottom width, number of x2 up-blocks)
RESOLUTIONS = {16: (4, 2), 32: (4, 3), 48: (6, 3), 64: (4, 4)}

# Path components whose kernels stay dense: BN / CBN (incl. their gain/bias linears and
# embeddings), the shared class embedding, and the projection/classifier head of a conditional D.
_NEVER_MASKED_PREFIXES = ("bn", "shared", "head")


def layout(resolution: int) -> tuple[int, int]:
    """(bottom, n_blocks) for a supported resolution; ValueError names the valid ones."""
    if resolution not in RESOLUTIONS:
        valid = ", ".join(str(r) for r in RESOLUTIONS)
        raise ValueError(f"unsupported resolution {resolution}; valid: {valid}")
    return RESOLUTIONS[resolution]


def family_from_config(build, cfg) -> GAN:
    """A configurable family's `build(resolution, z_dim, g_ch, d_ch, num_classes, attention)`
    called with those fields of a model config."""
    return build(cfg.resolution, cfg.z_dim, cfg.g_ch, cfg.d_ch, cfg.num_classes, cfg.attention)


def is_maskable(name: str, leaf) -> bool:
    """Every conv/dense kernel; never biases, norms, embeddings, heads, gains (design §1)."""
    parts = name.split("/")
    if parts[-1] != "kernel" or getattr(leaf, "ndim", 0) < 2:
        return False
    return not any(p.startswith(_NEVER_MASKED_PREFIXES) for p in parts[:-1])


def _check_labels(y: Array | None, num_classes: int) -> None:
    if num_classes > 0 and y is None:
        raise ValueError("conditional model: labels y are required")


class Generator(nn.Module):
    """z (and y) -> dense to bottom x bottom x widths[0] -> up-blocks -> BN-ReLU-conv3-tanh.

    widths: channels at the bottom, then after each up-block. norm: 'bn' (unconditional), 'class'
    (CBN from per-layer class embeddings) or 'shared' (CBN linears on [shared class embedding,
    z chunk]). hierarchical: split z into n_blocks+1 equal chunks (extra dims unused, as in
    StudioGAN); chunk 0 feeds the dense layer, chunk i+1 conditions block i.
    attention_res: add self-attention after the first block whose output has this size (0: none).
    """

    widths: tuple[int, ...]
    bottom: int
    spec: LayerSpec
    norm: str = "bn"
    num_classes: int = 0
    shared_dim: int = 0
    hierarchical: bool = False
    attention_res: int = 0
    bn_eps: float = 1e-5

    @nn.compact
    def __call__(self, z: Array, y: Array | None = None, *, train: bool) -> Array:
        n = len(self.widths) - 1
        conditional = self.num_classes > 0
        if conditional:
            _check_labels(y, self.num_classes)
        if self.hierarchical:
            k = z.shape[-1] // (n + 1)
            chunks = [z[:, i * k : (i + 1) * k] for i in range(n + 1)]
        else:
            chunks = [z] + [None] * n
        conds = self._block_conds(y if conditional else None, chunks[1:])

        h = layers.dense(
            chunks[0],
            self.bottom * self.bottom * self.widths[0],
            self.spec,
            name="linear",
            update_stats=train,
        )
        h = h.reshape(z.shape[0], self.bottom, self.bottom, self.widths[0])
        attended = False
        for i in range(n):
            h = layers.GBlock(
                self.widths[i + 1],
                self.spec,
                self.norm,
                self.num_classes,
                self.bn_eps,
                name=f"block{i + 1}",
            )(h, conds[i], train=train)
            if not attended and h.shape[1] == self.attention_res:
                h = layers.SelfAttention(self.spec, name="attn")(h, update_stats=train)
                attended = True
        h = layers.CondBatchNorm("bn", self.spec, eps=self.bn_eps, name="bn")(h, None, train=train)
        h = layers.conv(nn.relu(h), 3, self.spec, name="conv_out", update_stats=train)
        return jnp.tanh(h).astype(jnp.float32)

    def _block_conds(self, y: Array | None, z_chunks: list) -> list:
        """Per-block conditioning input of the CBNs (None / labels / vectors)."""
        n = len(z_chunks)
        if self.norm == "bn":
            return [None] * n
        if self.norm == "class":
            return [y] * n
        parts = []
        if y is not None:
            parts.append(
                layers.embed(
                    y, self.num_classes, self.shared_dim, self.spec, name="shared", sn=False
                )
            )
        conds = []
        for zc in z_chunks:
            vec = parts + ([zc] if zc is not None else [])
            if not vec:
                raise ValueError("norm 'shared' needs labels or a hierarchical z")
            conds.append(jnp.concatenate(vec, axis=-1))
        return conds


class Discriminator(nn.Module):
    """x -> D blocks -> ReLU -> sum/mean pool -> dense (+ projection when conditional) -> (B,).

    The first block is SNGAN's optimized block. Unconditional: final dense is 'linear' (maskable,
    as the reference masks the last layer); conditional: 'head' = classifier + projection (dense).
    `linear_bias=False` drops the unconditional final dense's bias (SNGAN's `Linear(128, 1,
    bias=False)`).
    """

    widths: tuple[int, ...]
    downs: tuple[bool, ...]
    spec: LayerSpec
    num_classes: int = 0
    pool: str = "sum"
    attention_res: int = 0
    hidden_in: bool = False
    linear_bias: bool = True

    @nn.compact
    def __call__(self, x: Array, y: Array | None = None, *, update_stats: bool) -> Array:
        _check_labels(y, self.num_classes)
        h = x
        attended = False
        for i, (w, down) in enumerate(zip(self.widths, self.downs, strict=True)):
            h = layers.DBlock(
                w, self.spec, down, optimized=i == 0, hidden_in=self.hidden_in, name=f"block{i + 1}"
            )(h, update_stats=update_stats)
            if not attended and h.shape[1] == self.attention_res:
                h = layers.SelfAttention(self.spec, name="attn")(h, update_stats=update_stats)
                attended = True
        h = nn.relu(h)
        h = jnp.sum(h, axis=(1, 2)) if self.pool == "sum" else jnp.mean(h, axis=(1, 2))
        if self.num_classes > 0:
            out = layers.ProjectionHead(self.num_classes, self.spec, name="head")(
                h, y, update_stats=update_stats
            )
        else:
            out = layers.dense(h, 1, self.spec, name="linear", use_bias=self.linear_bias,
                               update_stats=update_stats)[:, 0]
        return out.astype(jnp.float32)


@dataclasses.dataclass(frozen=True)
class GAN:
    """What `models.create` returns: both modules plus the facts the trainer needs."""

    generator: Generator
    discriminator: Discriminator
    z_dim: int
    num_classes: int
    resolution: int

    def g_is_maskable(self, name: str, leaf) -> bool:
        return is_maskable(name, leaf)

    def d_is_maskable(self, name: str, leaf) -> bool:
        return is_maskable(name, leaf)

    def init(self, key: Array) -> tuple[dict, dict]:
        """(g_variables, d_variables): 'params', 'batch_stats' (G), 'spectral_stats' (if SN)."""
        gk, dk = jax.random.split(key)
        z = jnp.zeros((2, self.z_dim), jnp.float32)
        y = jnp.zeros((2,), jnp.int32) if self.num_classes > 0 else None
        x = jnp.zeros((2, self.resolution, self.resolution, 3), jnp.float32)
        g_vars = self.generator.init({"params": gk}, z, y, train=False)
        d_vars = self.discriminator.init({"params": dk}, x, y, update_stats=False)
        return dict(g_vars), dict(d_vars)
