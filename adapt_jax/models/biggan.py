"""BigGAN variants: the reference's `biggan.32`, StudioGAN's BigGAN-64 and a configurable family.

`biggan32` (reference `backbones/biggan.py`): constant width 256, CBN x*(1+g)+b with g, b from
plain per-layer class embeddings, SN in G and D, projection D, N(0, 0.02) init, no attention,
no shared embedding, no hierarchical z; 10 classes, z_dim 128.

`biggan` family (StudioGAN `big_resnet` generalised): G widths g_ch*2^n, ..., g_ch; shared class
embedding (dim g_ch) and hierarchical z feed SN-linear CBNs (BN eps 1e-4); D widths d_ch*2^i
with n down blocks then one flat block; SN eps 1e-6 in G and D; projection D when
num_classes > 0; orthogonal init; optional self-attention at resolution/2 in G and D.
`biggan64` is that family at 64x64 with g_ch = d_ch = 80, z_dim 100, shared dim 128,
attention and 200 classes (TinyImageNet; docs/design.md §8).
"""

from __future__ import annotations

from ml_collections import ConfigDict

from adapt_jax.models.layers import LayerSpec
from adapt_jax.models.nets import GAN, Discriminator, Generator, family_from_config, layout


def build(
    resolution: int,
    z_dim: int,
    g_ch: int,
    d_ch: int,
    num_classes: int,
    attention: bool,
    shared_dim: int | None = None,
) -> GAN:
    """StudioGAN-style BigGAN at any supported resolution and width."""
    bottom, n = layout(resolution)
    spec = LayerSpec(sn=True, init="ortho", sn_eps=1e-6)
    attn = resolution // 2 if attention else 0
    gen = Generator(
        widths=tuple(g_ch * 2 ** (n - i) for i in range(n + 1)),
        bottom=bottom,
        spec=spec,
        norm="shared",
        num_classes=num_classes,
        shared_dim=g_ch if shared_dim is None else shared_dim,
        hierarchical=True,
        attention_res=attn,
        bn_eps=1e-4,
    )
    disc = Discriminator(
        widths=tuple(d_ch * 2**i for i in range(n + 1)),
        downs=(True,) * n + (False,),
        spec=spec,
        num_classes=num_classes,
        pool="sum",
        attention_res=attn,
    )
    return GAN(gen, disc, z_dim=z_dim, num_classes=num_classes, resolution=resolution)


def biggan(cfg: ConfigDict) -> GAN:
    """Configurable family: resolution, z_dim, g_ch, d_ch, num_classes, attention from cfg."""
    return family_from_config(build, cfg)


def biggan64(cfg: ConfigDict) -> GAN:
    """TinyImageNet BigGAN (StudioGAN hard-coded 64x64 settings); ignores every cfg field."""
    del cfg
    return build(64, z_dim=100, g_ch=80, d_ch=80, num_classes=200, attention=True, shared_dim=128)


def biggan32(cfg: ConfigDict) -> GAN:
    """Reference `--model biggan.32` (CIFAR-10, conditional); ignores every cfg field."""
    del cfg
    spec = LayerSpec(sn=True, init="normal02")
    gen = Generator(widths=(256,) * 4, bottom=4, spec=spec, norm="class", num_classes=10)
    disc = Discriminator(
        widths=(256,) * 4, downs=(True, True, False, False), spec=spec, num_classes=10, pool="sum"
    )
    return GAN(gen, disc, z_dim=128, num_classes=10, resolution=32)
