"""Model registry: `create(model_cfg)` -> `GAN` (generator, discriminator, init, maskability).

Named paper models fix their whole architecture (and z_dim / num_classes, reported on the GAN);
the families `sngan`, `resnet` (ResNet-48's) and `biggan` read resolution, z_dim, g_ch, d_ch,
num_classes, attention.
Every model reads `dtype` ('float32', or 'bfloat16' for mixed-precision compute) and
`conv_impl` (`cpu_conv.CONV_IMPLS`; 'auto' picks the CPU conv forms on the CPU backend only).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax.numpy as jnp
from ml_collections import ConfigDict

from adapt_jax.models import biggan, resnet48, sngan
from adapt_jax.models.cpu_conv import CONV_IMPLS, resolve_conv_impl
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
    """Build the GAN named by model_cfg.name; unknown names raise ValueError listing valid ones.

    `conv_impl` is resolved here, once: G's and D's specs carry the concrete choice, so every
    function traced from them uses it, whatever the backend or process state at trace time."""
    name = model_cfg.name
    if name not in _BUILDERS:
        raise ValueError(f"unknown model {name!r}; valid: {', '.join(NAMES)}")
    dtype = model_cfg.get("dtype", "float32")
    if dtype not in DTYPES:
        raise ValueError(f"unknown model.dtype {dtype!r}; valid: {', '.join(DTYPES)}")
    changes = dict(dtype=DTYPES[dtype],
                   conv_impl=resolve_conv_impl(model_cfg.get("conv_impl", "auto")))
    gan = _BUILDERS[name](model_cfg)
    return dataclasses.replace(gan, generator=_with_spec(gan.generator, changes),
                               discriminator=_with_spec(gan.discriminator, changes))


def _with_spec(net: Generator | Discriminator, changes: dict) -> Generator | Discriminator:
    return net.clone(spec=dataclasses.replace(net.spec, **changes))


__all__ = ["CONV_IMPLS", "GAN", "NAMES", "Discriminator", "Generator", "create", "is_maskable"]
