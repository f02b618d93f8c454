"""Model registry: `create(model_cfg)` -> `GAN` (generator, discriminator, init, maskability).

Named paper models fix their whole architecture (and z_dim / num_classes, reported on the GAN);
the families `sngan`, `resnet` (ResNet-48's) and `biggan` read resolution, z_dim, g_ch, d_ch,
num_classes, attention.
Every model reads `dtype` ('float32', or 'bfloat16' for mixed-precision compute).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax.numpy as jnp
from ml_collections import ConfigDict

from adapt_jax.models import biggan, resnet48, sngan
from adapt_jax.models.nets import GAN, Discriminator, Generator, is_maskable

_BUILDERS: dict[str, Callable[[ConfigDict], GAN]] = {
    "sngan32": sngan.sngan32,
    "resnet48": resnet48.resnet48,
    "biggan32": biggan.biggan32,
    "biggan64": biggan.biggan64,
    "sngan": sngan.sngan,
    "resnet": resnet48.resnet,
    "biggan": biggan.biggan,
}
NAMES = tuple(_BUILDERS)
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def create(model_cfg: ConfigDict) -> GAN:
    """Build the GAN named by model_cfg.name; unknown names raise ValueError listing valid ones."""
    name = model_cfg.name
    if name not in _BUILDERS:
        raise ValueError(f"unknown model {name!r}; valid: {', '.join(NAMES)}")
    dtype = model_cfg.get("dtype", "float32")
    if dtype not in DTYPES:
        raise ValueError(f"unknown model.dtype {dtype!r}; valid: {', '.join(DTYPES)}")
    gan = _BUILDERS[name](model_cfg)
    if dtype == "float32":
        return gan
    return dataclasses.replace(gan, generator=_with_dtype(gan.generator, DTYPES[dtype]),
                               discriminator=_with_dtype(gan.discriminator, DTYPES[dtype]))


def _with_dtype(net: Generator | Discriminator, dtype) -> Generator | Discriminator:
    return net.clone(spec=dataclasses.replace(net.spec, dtype=dtype))


__all__ = ["GAN", "NAMES", "Discriminator", "Generator", "create", "is_maskable"]
