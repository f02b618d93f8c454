"""GAN objectives on raw D logits (docs/design.md §7): hinge (default), non-saturating (ns),
wasserstein."""

from __future__ import annotations

import jax
import jax.numpy as jnp

Array = jax.Array

LOSSES = ("hinge", "ns", "wasserstein")


def _check(name: str) -> None:
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; valid: {', '.join(LOSSES)}")


def d_loss(name: str, real_logits: Array, fake_logits: Array) -> Array:
    """Scalar D loss; real and fake batches may differ in size (each term is its own mean)."""
    _check(name)
    if name == "hinge":
        return jnp.mean(jax.nn.relu(1.0 - real_logits)) + jnp.mean(jax.nn.relu(1.0 + fake_logits))
    if name == "ns":
        # -log sigmoid(r) - log(1 - sigmoid(f)), in the overflow-safe softplus form.
        return jnp.mean(jax.nn.softplus(-real_logits)) + jnp.mean(jax.nn.softplus(fake_logits))
    return jnp.mean(fake_logits) - jnp.mean(real_logits)


def g_loss(name: str, fake_logits: Array) -> Array:
    """Scalar G loss: -mean f for hinge and wasserstein, -log sigmoid(f) for ns."""
    _check(name)
    if name == "ns":
        return jnp.mean(jax.nn.softplus(-fake_logits))
    return -jnp.mean(fake_logits)
