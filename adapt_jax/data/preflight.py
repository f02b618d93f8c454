"""What the data implies before anything is built: its size and its number of classes.

`describe` reads names and metadata only (no pixel is decoded), so the CLI can make the model's
class count follow the data, and refuse a dataset smaller than one batch, in well under a
second and before any compilation.
"""

from __future__ import annotations

import dataclasses

import ml_collections

from adapt_jax.data import digits, folder


@dataclasses.dataclass(frozen=True)
class DataInfo:
    num_examples: int
    num_classes: int  # 0 = no labels (unconditional)
    description: str


def describe(data_cfg: ml_collections.ConfigDict) -> DataInfo:
    """Size and classes of the configured data; raises ValueError/FileNotFoundError (with the
    fix) when it cannot be opened."""
    if data_cfg.source == "digits":
        return DataInfo(digits.NUM_EXAMPLES, digits.NUM_CLASSES if data_cfg.use_labels else 0,
                        "digits")
    if data_cfg.source == "folder":
        root, files, _, num_classes = folder.index_folder(data_cfg.path, data_cfg.use_labels)
        return DataInfo(len(files), num_classes, f"folder:{root}")
    if data_cfg.source == "tfds":
        from adapt_jax.data import tfds_source

        builder, ds = tfds_source.open_data_source(data_cfg.name, data_cfg.split,
                                                   data_cfg.data_dir)
        classes = tfds_source.label_classes(builder.info.features, data_cfg.split)
        return DataInfo(len(ds), classes if data_cfg.use_labels else 0,
                        f"tfds:{data_cfg.name}[{data_cfg.split}]")
    raise ValueError(f"unknown data.source={data_cfg.source!r}")


def check_batch(num_examples: int, batch_size: int, description: str,
                what: str = "images") -> None:
    """A dataset smaller than one D batch cannot fill a single step."""
    if num_examples < batch_size:
        raise ValueError(f"{description} has {num_examples} {what}, fewer than one "
                         f"batch (train.batch_d={batch_size}); add images or lower "
                         f"--config.train.batch_d to at most {num_examples}")


def resolve_num_classes(config: ml_collections.ConfigDict, info: DataInfo,
                        explicit: bool) -> str | None:
    """Set `config.model.num_classes` to the data's class count unless the user set it
    (`explicit`) or the named model fixes it; returns the line to log, or None.

    No class sub-folders -> 0 (unconditional), k sub-folders -> k, digits -> 10.
    """
    from adapt_jax import models

    if explicit:
        return None
    k = info.num_classes
    trial = ml_collections.ConfigDict(config.model.to_dict())
    trial.num_classes = k
    try:
        if models.create(trial).num_classes != k:
            return None  # a named paper model: its class count is part of its architecture
    except ValueError:
        return None  # an invalid model config: validation names the field
    config.model.num_classes = k
    kind = f"{k} classes" if k else "no labels, unconditional"
    return (f"model.num_classes={k} from the data ({info.description}: {kind}); set "
            f"--config.model.num_classes to override")
