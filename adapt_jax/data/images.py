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


def fit(image: Image.Image | np.ndarray, resolution: int) -> np.ndarray:
    """Any image (PIL or HxW[xC] uint8) -> (resolution, resolution, 3) uint8 RGB."""
    if isinstance(image, np.ndarray):
        if image.shape == (resolution, resolution, 3) and image.dtype == np.uint8:
            return image  # already there (CIFAR-10 at R=32): skip the PIL round trip
        image = Image.fromarray(image.squeeze(-1) if image.ndim == 3 and image.shape[-1] == 1
                                else image)
    image = center_crop_square(image.convert("RGB"))
    if image.size != (resolution, resolution):
        image = image.resize((resolution, resolution), _RESAMPLE)
    return np.asarray(image, dtype=np.uint8)
