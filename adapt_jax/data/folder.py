"""A directory tree of PNG/JPEG files (e.g. tiny-imagenet-200/train, or your own images).

Files are decoded lazily in `get` (nothing cached): a folder can hold far more pixels than host
memory, start-up stays instant, and a 64x64 JPEG decodes in well under a millisecond.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from adapt_jax.data import images
from adapt_jax.data.source import Source

EXTENSIONS = (".png", ".jpg", ".jpeg")


def list_images(root: Path) -> list[Path]:
    """All image files under `root`, recursively, in a stable (sorted) order."""
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in EXTENSIONS and p.is_file())


def folder_labels(root: Path, files: list[Path]) -> tuple[np.ndarray, int]:
    """Labels = index of each file's top-level sub-folder among the sorted sub-folder names.

    Sub-folders without images get no class. Files directly in `root` mixed with class folders
    are ambiguous, so they are an error rather than a silent extra class.
    """
    tops = [p.relative_to(root).parts[0] if len(p.relative_to(root).parts) > 1 else None
            for p in files]
    loose = [str(f) for f, t in zip(files, tops, strict=True) if t is None]
    if loose:
        raise ValueError(f"data.path={str(root)!r} mixes class sub-folders with {len(loose)} "
                         f"image(s) at its top level (e.g. {loose[0]}); move them into a class "
                         f"folder or set data.use_labels=False")
    classes = sorted(set(tops))
    index = {name: i for i, name in enumerate(classes)}
    return np.array([index[t] for t in tops], np.int32), len(classes)


class FolderSource(Source):
    """Center-crops each image to a square, resizes it to R and converts it to RGB."""

    def __init__(self, path: str, resolution: int, use_labels: bool = True):
        if not path:
            raise ValueError("data.path is empty; set it to a directory of PNG/JPEG images")
        root = Path(path).expanduser()
        if not root.is_dir():
            raise ValueError(f"data.path={path!r} is not a directory")
        self._files = list_images(root)
        if not self._files:
            raise ValueError(f"data.path={path!r} contains no {'/'.join(EXTENSIONS)} images")
        nested = any(len(f.relative_to(root).parts) > 1 for f in self._files)
        if use_labels and nested:
            self._labels, self.num_classes = folder_labels(root, self._files)
        else:
            self._labels, self.num_classes = np.zeros(len(self._files), np.int32), 0
        self.num_examples = len(self._files)
        self.resolution = resolution
        self.description = f"folder:{root}"

    def _get(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        batch = np.stack([self._load(int(i)) for i in indices])
        return batch, self._labels[indices]

    def _load(self, i: int) -> np.ndarray:
        with Image.open(self._files[i]) as image:
            return images.fit(image, self.resolution)
