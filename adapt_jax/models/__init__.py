"""Model registry: `create(model_cfg)` -> `GAN` (generator, discriminator, init, maskability).

Named paper models fix their whole architecture (and z_dim / num_classes, reported on the GAN);
the families `sngan` and `biggan` read resolution, z_dim, g_ch, d_ch, num_classes, attention.
"""

from __future__ import annotations

from collections.abc import Callable

from ml_collections import ConfigDict

from adapt_jax.models import biggan, resnet48, sngan
from adapt_jax.models.nets import GAN, Discriminator, Generator, is_maskable

_BUILDERS: dict[str, Callable[[ConfigDict], GAN]] = {
    "sngan32": sngan.sngan32,
    "resnet48": resnet48.resnet48,
    "biggan32": biggan.biggan32,
    "biggan64": biggan.biggan64,
    "sngan": sngan.sngan,
    "biggan": biggan.biggan,
}
NAMES = tuple(_BUILDERS)


def create(model_cfg: ConfigDict) -> GAN:
    """Build the GAN named by model_cfg.name; unknown names raise ValueError listing valid ones."""
    name = model_cfg.name
    if name not in _BUILDERS:
        raise ValueError(f"unknown model {name!r}; valid: {', '.join(NAMES)}")
    return _BUILDERS[name](model_cfg)


__all__ = ["GAN", "NAMES", "Discriminator", "Generator", "create", "is_maskable"]
