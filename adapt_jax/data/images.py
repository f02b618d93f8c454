"""Image geometry shared by every source: one place decides crop, resampling and channels."""

from __future__ import annotations

import numpy as np
from PIL import Image

# Bicubic for both directions: PIL widens the kernel when shrinking (antialiased), and it keeps
# upsampled 8x8 digits smooth instead of blocky.
_RESAMPLE = Image.Resampling.BICUBIC


def center_crop_square(image: Image.Image) -> Image.Image:
    """Largest centred square, so resizing never distorts the aspect ratio."""
    w, h = image.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    return image.crop((left, top, left + side, top + side))


def to_8bit(image: Image.Image) -> Image.Image:
    """16-bit greyscale ('I;16*', 'I') scaled to 8 bits; `convert('RGB')` would clip every value
    above 255 to white. (PIL already reads 16-bit RGB PNGs as 8-bit RGB, scaled.)"""
    if not image.mode.startswith("I"):
        return image
    x = np.asarray(image, dtype=np.float64) * (255.0 / 65535.0)
    return Image.fromarray(np.clip(np.rint(x), 0, 255).astype(np.uint8))


def fit(image: Image.Image | np.ndarray, resolution: int) -> np.ndarray:
    """Any image (PIL or HxW[xC] uint8/uint16) -> (resolution, resolution, 3) uint8 RGB."""
    if isinstance(image, np.ndarray):
        if image.shape == (resolution, resolution, 3) and image.dtype == np.uint8:
            return image  # already there (CIFAR-10 at R=32): skip the PIL round trip
        if image.dtype == np.uint16:
            image = np.rint(image * (255.0 / 65535.0)).astype(np.uint8)
        image = Image.fromarray(image.squeeze(-1) if image.ndim == 3 and image.shape[-1] == 1
                                else image)
    image = center_crop_square(to_8bit(image).convert("RGB"))
    if image.size != (resolution, resolution):
        image = image.resize((resolution, resolution), _RESAMPLE)
    return np.asarray(image, dtype=np.uint8)
