"""SNGAN ResNet (Miyato et al. 2018; reference `backbones/lottery_sngan.py`) and its small family.

G: dense -> up-blocks of constant width g_ch -> BN-ReLU-conv3-tanh, no spectral norm.
D: optimized down block, more down blocks, then 2 non-down blocks of constant width d_ch,
ReLU, global *sum* pool, dense -> 1 without bias (the reference's `Linear(128, 1, bias=False)`);
spectral norm on every conv/dense of D. PyTorch default init.

Parameter counts of `sngan32` (g_ch 256, d_ch 128): G 4,276,739; D 1,053,824 = optimized block
151,680 + down block 311,680 + 2 x 295,168 + final dense 128 weights, as the reference's.
"""

from __future__ import annotations

from ml_collections import ConfigDict

from adapt_jax.models.layers import LayerSpec
from adapt_jax.models.nets import GAN, Discriminator, Generator, family_from_config, layout


def build(
    resolution: int, z_dim: int, g_ch: int, d_ch: int, num_classes: int = 0, attention: bool = False
) -> GAN:
    """Any-width SNGAN; conditional (CBN G + projection D) when num_classes > 0."""
    bottom, n = layout(resolution)
    attn = resolution // 2 if attention else 0
    gen = Generator(
        widths=(g_ch,) * (n + 1),
        bottom=bottom,
        spec=LayerSpec(sn=False, init="torch"),
        norm="class" if num_classes > 0 else "bn",
        num_classes=num_classes,
        attention_res=attn,
    )
    # Reference: 2 down blocks then 2 flat at 32x32; generalised as n-1 down + 2 flat.
    downs = (True,) * (n - 1) + (False, False)
    disc = Discriminator(
        widths=(d_ch,) * len(downs),
        downs=downs,
        spec=LayerSpec(sn=True, init="torch"),
        num_classes=num_classes,
        pool="sum",
        attention_res=attn,
        hidden_in=True,
        linear_bias=False,
    )
    return GAN(gen, disc, z_dim=z_dim, num_classes=num_classes, resolution=resolution)


def sngan32(cfg: ConfigDict) -> GAN:
    """Paper Table 4 / reference `--model lottery` on CIFAR-10; ignores every cfg field."""
    del cfg
    return build(resolution=32, z_dim=128, g_ch=256, d_ch=128)


def sngan(cfg: ConfigDict) -> GAN:
    """Configurable family: resolution, z_dim, g_ch, d_ch, num_classes, attention from cfg."""
    return family_from_config(build, cfg)
