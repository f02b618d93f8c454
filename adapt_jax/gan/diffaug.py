"""DiffAugment (Zhao et al. 2020) for NHWC batches in [-1, 1] (docs/design.md §7).

Parameters follow the reference `diffAugment_pytorch.py`: brightness +U[-0.5, 0.5), saturation
x U[0, 2), contrast x U[0.5, 1.5), translation by up to 1/8 of the size with zero fill, cutout of
a square of half the size (clipped at the border). All randomness comes from `key` alone, so the
same key on two batches of the same size draws the same per-sample parameters: this is how real
and fake share augmentation within one D step (the reference reseeds once per iteration, so its
D steps share one draw; docs/design.md §14).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

Array = jax.Array

POLICIES = ("color", "translation", "cutout")
TRANSLATION_RATIO = 0.125
CUTOUT_RATIO = 0.5


def parse_policy(policy: str) -> tuple[str, ...]:
    """'' -> (); 'color,cutout' -> ('color', 'cutout'); unknown parts raise ValueError."""
    parts = tuple(p.strip() for p in policy.split(",") if p.strip())
    bad = [p for p in parts if p not in POLICIES]
    if bad:
        raise ValueError(f"unknown DiffAugment policy {bad}; valid: {', '.join(POLICIES)}")
    return parts


def _uniform(key: Array, x: Array) -> Array:
    """One U[0, 1) draw per sample, shaped to broadcast over (H, W, C)."""
    return jax.random.uniform(key, (x.shape[0], 1, 1, 1), x.dtype)


def color(key: Array, x: Array) -> Array:
    kb, ks, kc = jax.random.split(key, 3)
    x = x + (_uniform(kb, x) - 0.5)
    mean = jnp.mean(x, axis=3, keepdims=True)
    x = (x - mean) * (_uniform(ks, x) * 2.0) + mean
    mean = jnp.mean(x, axis=(1, 2, 3), keepdims=True)
    return (x - mean) * (_uniform(kc, x) + 0.5) + mean


def shift(x: Array, dy: Array, dx: Array) -> Array:
    """out[i, j] = x[i + dy, j + dx], zero outside the image; x is one (H, W, C) image."""
    h, w, c = x.shape
    ph, pw = h, w  # pad by the full size so any |shift| <= size stays in range
    padded = jnp.pad(x, ((ph, ph), (pw, pw), (0, 0)))
    return jax.lax.dynamic_slice(padded, (ph + dy, pw + dx, 0), (h, w, c))


def translation(key: Array, x: Array) -> Array:
    b, h, w, _ = x.shape
    sy, sx = int(h * TRANSLATION_RATIO + 0.5), int(w * TRANSLATION_RATIO + 0.5)
    ky, kx = jax.random.split(key)
    dy = jax.random.randint(ky, (b,), -sy, sy + 1)
    dx = jax.random.randint(kx, (b,), -sx, sx + 1)
    return jax.vmap(shift)(x, dy, dx)


def cutout(key: Array, x: Array) -> Array:
    b, h, w, _ = x.shape
    ch, cw = int(h * CUTOUT_RATIO + 0.5), int(w * CUTOUT_RATIO + 0.5)
    ky, kx = jax.random.split(key)
    # Reference: offset in [0, size + (1 - cut % 2)), square starts at offset - cut // 2.
    top = jax.random.randint(ky, (b, 1, 1, 1), 0, h + (1 - ch % 2)) - ch // 2
    left = jax.random.randint(kx, (b, 1, 1, 1), 0, w + (1 - cw % 2)) - cw // 2
    rows = jnp.arange(h)[None, :, None, None]
    cols = jnp.arange(w)[None, None, :, None]
    inside = (rows >= top) & (rows < top + ch) & (cols >= left) & (cols < left + cw)
    return jnp.where(inside, jnp.zeros_like(x), x)


_FNS: dict[str, Callable[[Array, Array], Array]] = {
    "color": color,
    "translation": translation,
    "cutout": cutout,
}


def augment(key: Array, x: Array, policy: str) -> Array:
    """Apply the policy's augmentations in the order given; jit with `policy` static."""
    for name in parse_policy(policy):
        # Fixed per-op sub-key: an op's draws do not depend on which other ops are enabled.
        x = _FNS[name](jax.random.fold_in(key, POLICIES.index(name)), x)
    return x
