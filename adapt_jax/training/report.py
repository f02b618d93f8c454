"""What a run leaves for people to look at: sample grids, the balance plot, summary.json.

Every file goes through `paths`, so a workdir may be a bucket (`gs://...`) and no reader ever
sees a half-written file.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from adapt_jax import paths


def image_grid(images: np.ndarray, cols: int) -> np.ndarray:
    """(N, H, W, C) uint8 → one (rows*H, cols*W, C) image, 1-pixel gaps."""
    n, h, w, c = images.shape
    rows = math.ceil(n / cols)
    grid = np.zeros((rows * (h + 1) - 1, cols * (w + 1) - 1, c), np.uint8)
    for i, img in enumerate(images):
        r, k = divmod(i, cols)
        grid[r * (h + 1): r * (h + 1) + h, k * (w + 1): k * (w + 1) + w] = img
    return grid


def save_png(path: str, image: np.ndarray, scale: int = 1) -> None:
    from PIL import Image

    img = Image.fromarray(image)
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    paths.write_bytes(path, buf.getvalue())


def plot_balance(path: str, br: Sequence[tuple[int, float]],
                 band: Sequence[tuple[int, float, float]],
                 density: Sequence[tuple[int, float]], criterion: str = "BR",
                 band_label: str = "paper") -> None:
    """BR (time-averaged) with the band the controller used, as (t, lower, upper) points held
    until the next one (a fixed band is one point; a reference band follows its run), and D
    density, over iterations."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(7, 5), sharex=True)
    if br:
        t, v = zip(*br, strict=True)
        ax1.plot(t, v, lw=1, label=f"time-averaged {criterion}")
    if band:
        right = max([t for t, _ in br] + [band[-1][0] + 1])
        ts, lo, hi = (list(x) for x in zip(*band, strict=True))
        if band[0][0] > 0:  # a band set at a later iteration (calibrated): mark where
            ax1.axvline(band[0][0], color="tab:green", lw=0.8, ls="--")
        last = f"[{lo[-1]:.3g}, {hi[-1]:.3g}]"
        ax1.fill_between(ts + [right], lo + lo[-1:], hi + hi[-1:], step="post",
                         color="tab:green", alpha=0.2,
                         label=f"{band_label} band" + (f" {last}" if len(band) == 1 else ""))
    ax1.set_ylabel(criterion)
    ax1.legend(loc="best", fontsize=8)
    if density:
        t, v = zip(*density, strict=True)
        ax2.step(t, v, where="post", color="tab:red")
    ax2.set_ylabel("D density")
    ax2.set_xlabel("iteration")
    fig.tight_layout()
    paths.write_figure(path, fig, dpi=100)
    plt.close(fig)


def write_json_atomic(path: str, obj: Any) -> None:
    """Whole-file JSON write (see `paths.write_bytes`): a kill never leaves half a file."""
    paths.write_json(path, obj)
