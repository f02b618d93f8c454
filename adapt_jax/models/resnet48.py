"""STL-10 ResNet-48 (paper Table 5; reference `backbones/resnet.py`, `--model resnet.48`) and its
small family.

G: dense bottom x bottom x 8*g_ch -> up-blocks halving the width (4, 2, 1 x g_ch) ->
BN-ReLU-conv3-tanh (no SN).
D: down blocks doubling the width from d_ch until the image is 1x1 (48 -> 24 -> 12 -> 6 -> 3 -> 1,
pooling floors like PyTorch), ReLU, global *average* pool, dense -> 1; SN on every D conv/dense.
Kaiming-normal (fan_in) init, zero biases. `resnet48` is g_ch = d_ch = 64, z_dim 128,
unconditional: G 512, 256, 128, 64 and D 64, 128, 256, 512, 1024 channels.
"""

from __future__ import annotations

from ml_collections import ConfigDict

from adapt_jax.models.layers import LayerSpec
from adapt_jax.models.nets import GAN, Discriminator, Generator, family_from_config, layout


def _halvings_to_one(size: int) -> int:
    n = 0
    while size > 1:
        size //= 2
        n += 1
    return n


def build(resolution: int, z_dim: int, g_ch: int, d_ch: int, num_classes: int = 0,
          attention: bool = False) -> GAN:
    """Any-width ResNet-48 family; conditional (CBN G + projection D) when num_classes > 0."""
    bottom, n = layout(resolution)
    attn = resolution // 2 if attention else 0
    gen = Generator(widths=tuple(g_ch * 2 ** (n - i) for i in range(n + 1)), bottom=bottom,
                    spec=LayerSpec(sn=False, init="kaiming"),
                    norm="class" if num_classes > 0 else "bn", num_classes=num_classes,
                    attention_res=attn)
    n_d = _halvings_to_one(resolution)
    disc = Discriminator(
        widths=tuple(d_ch * 2 ** i for i in range(n_d)),
        downs=(True,) * n_d,
        spec=LayerSpec(sn=True, init="kaiming"),
        num_classes=num_classes,
        pool="mean",
        attention_res=attn,
        hidden_in=True,
    )
    return GAN(gen, disc, z_dim=z_dim, num_classes=num_classes, resolution=resolution)


def resnet48(cfg: ConfigDict) -> GAN:
    """Paper Table 5 / reference `--model resnet.48` on STL-10; ignores every cfg field."""
    del cfg
    return build(resolution=48, z_dim=128, g_ch=64, d_ch=64)


def resnet(cfg: ConfigDict) -> GAN:
    """Configurable family: resolution, z_dim, g_ch, d_ch, num_classes, attention from cfg."""
    return family_from_config(build, cfg)
