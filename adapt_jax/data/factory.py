"""`make_source`: config -> Source, with the checks that tie the data to the model config."""

from __future__ import annotations

from collections.abc import Callable

import ml_collections

from adapt_jax.data.digits import DigitsSource
from adapt_jax.data.folder import FolderSource
from adapt_jax.data.preflight import check_batch
from adapt_jax.data.source import Source
from adapt_jax.data.tfds_source import TfdsSource

_Builder = Callable[[ml_collections.ConfigDict, int], Source]

SOURCES: dict[str, _Builder] = {
    "digits": lambda c, r: DigitsSource(r, use_labels=c.use_labels),
    "tfds": lambda c, r: TfdsSource(c.name, c.split, c.data_dir, r, use_labels=c.use_labels),
    "folder": lambda c, r: FolderSource(c.path, r, use_labels=c.use_labels),
}


def make_source(data_cfg: ml_collections.ConfigDict, resolution: int,
                num_classes: int, batch_size: int = 0) -> Source:
    """Build the source named by `data_cfg.source` at the model's resolution.

    `num_classes` is the model's (config model.num_classes): a conditional model needs a source
    whose labels index exactly its class embedding. `batch_size` (train.batch_d), when given,
    must fit in the usable examples.
    """
    if data_cfg.source not in SOURCES:
        raise ValueError(f"unknown data.source={data_cfg.source!r}; valid sources: "
                         f"{', '.join(sorted(SOURCES))}")
    if resolution <= 0:
        raise ValueError(f"resolution must be positive, got {resolution}")
    source = SOURCES[data_cfg.source](data_cfg, resolution)
    if num_classes > 0 and source.num_classes == 0:
        raise ValueError(
            f"model.num_classes={num_classes} (conditional) but {source.description} has no "
            f"labels (data.use_labels={data_cfg.use_labels}); set model.num_classes=0 or use a "
            f"labelled source/split")
    if num_classes > 0 and num_classes != source.num_classes:
        raise ValueError(f"model.num_classes={num_classes} but {source.description} has "
                         f"{source.num_classes} classes; set model.num_classes="
                         f"{source.num_classes}")
    check_batch(source.num_examples, batch_size, source.description, "usable images")
    return source
