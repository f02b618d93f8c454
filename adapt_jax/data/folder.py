"""A directory tree of PNG/JPEG files (e.g. tiny-imagenet-200/train, or your own images).

Every file is checked once at start-up (headers, PNG checksums, JPEG end markers: no decoding),
so an empty, truncated or corrupt file is skipped with a warning naming it instead of failing
a batch hours into training. Pixels are decoded lazily in `get` (nothing cached): a folder can
hold far more pixels than host memory, and a 64x64 JPEG decodes in well under a millisecond.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from absl import logging
from PIL import Image

from adapt_jax.data import images
from adapt_jax.data.source import Source

EXTENSIONS = (".png", ".jpg", ".jpeg")
_NAMED = 3  # unreadable files named in the warning; the rest are counted


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


def index_folder(path: str, use_labels: bool) -> tuple[Path, list[Path], np.ndarray, int]:
    """(root, files, labels, num_classes) from names alone: no sub-folders = unconditional,
    k sub-folders (holding images) = k classes."""
    if not path:
        raise ValueError("data.path is empty; set it to a directory of PNG/JPEG images")
    root = Path(path).expanduser()
    if not root.is_dir():
        raise ValueError(f"data.path={path!r} is not a directory")
    files = list_images(root)
    if not files:
        raise ValueError(f"data.path={path!r} contains no {'/'.join(EXTENSIONS)} images")
    if use_labels and any(len(f.relative_to(root).parts) > 1 for f in files):
        labels, num_classes = folder_labels(root, files)
        return root, files, labels, num_classes
    return root, files, np.zeros(len(files), np.int32), 0


def file_problem(path: Path) -> str | None:
    """Why `path` cannot be trained on (None if it can), without decoding its pixels."""
    if path.stat().st_size == 0:
        return "empty file"
    limit = Image.MAX_IMAGE_PIXELS
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                width, height = image.size
                if limit and width * height > limit:
                    return (f"{width}x{height} pixels, above PIL's decompression-bomb limit of "
                            f"{limit} (PIL.Image.MAX_IMAGE_PIXELS); shrink it")
                image.verify()  # PNG: every chunk's checksum, up to the end chunk
    except Image.DecompressionBombError as err:  # over twice the limit: PIL gives the size
        return f"{err} (PIL.Image.MAX_IMAGE_PIXELS={limit}); shrink it"
    except Exception as err:  # PIL raises OSError, SyntaxError, ValueError, struct.error...
        return f"unreadable ({err})"
    if path.suffix.lower() in (".jpg", ".jpeg") and not _ends_with_jpeg_marker(path):
        return "truncated JPEG (no end-of-image marker)"
    return None


def _ends_with_jpeg_marker(path: Path) -> bool:
    """JPEGs end with FF D9; PIL's verify() does not check, and decoding would."""
    with open(path, "rb") as f:
        f.seek(max(0, path.stat().st_size - 64))
        return f.read().rstrip(b"\0\r\n ").endswith(b"\xff\xd9")


class FolderSource(Source):
    """Center-crops each image to a square, resizes it to R and converts it to RGB."""

    def __init__(self, path: str, resolution: int, use_labels: bool = True):
        root, files, labels, self.num_classes = index_folder(path, use_labels)
        problems = [(f, file_problem(f)) for f in files]
        bad = [(f, why) for f, why in problems if why is not None]
        if len(bad) == len(files):
            f, why = bad[0]
            raise ValueError(f"data.path={path!r}: none of its {len(files)} images can be "
                             f"read (e.g. {f}: {why})")
        if bad:
            named = "; ".join(f"{f.relative_to(root)}: {why}" for f, why in bad[:_NAMED])
            more = f" and {len(bad) - _NAMED} more" if len(bad) > _NAMED else ""
            logging.warning("data.path=%s: skipping %d of %d images that cannot be used "
                            "(%s%s)", path, len(bad), len(files), named, more)
        keep = np.array([why is None for _, why in problems])
        self._files = [f for f, ok in zip(files, keep, strict=True) if ok]
        self._labels = labels[keep]
        self.skipped = len(bad)
        self.num_examples = len(self._files)
        self.resolution = resolution
        self.description = f"folder:{root}"

    def _get(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        batch = np.stack([self._load(int(i)) for i in indices])
        return batch, self._labels[indices]

    def _load(self, i: int) -> np.ndarray:
        with Image.open(self._files[i]) as image:
            return images.fit(image, self.resolution)
