"""STL-10 ResNet-48 (paper Table 5; reference `backbones/resnet.py`, `--model resnet.48`).

G: dense 6x6x512 -> up-blocks 256, 128, 64 -> BN-ReLU-conv3-tanh (no SN).
D: down blocks 64, 128, 256, 512, 1024 (all downsample: 48 -> 24 -> 12 -> 6 -> 3 -> 1, pooling
floors like PyTorch), ReLU, global *average* pool, dense -> 1; SN on every D conv/dense.
Kaiming-normal (fan_in) init, zero biases. Unconditional, z_dim 128; ignores every cfg field.
"""

from __future__ import annotations

from ml_collections import ConfigDict

from adapt_jax.models.layers import LayerSpec
from adapt_jax.models.nets import GAN, Discriminator, Generator


def resnet48(cfg: ConfigDict) -> GAN:
    del cfg
    gen = Generator(widths=(512, 256, 128, 64), bottom=6, spec=LayerSpec(sn=False, init="kaiming"))
    disc = Discriminator(
        widths=(64, 128, 256, 512, 1024),
        downs=(True,) * 5,
        spec=LayerSpec(sn=True, init="kaiming"),
        pool="mean",
        hidden_in=True,
    )
    return GAN(gen, disc, z_dim=128, num_classes=0, resolution=48)
