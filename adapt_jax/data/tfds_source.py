"""TFDS datasets through `tfds.data_source`: random access over ArrayRecord, no tf.data.

Paper datasets by TFDS name (tensorflow-datasets 4.9.10):
  CIFAR-10      -> name 'cifar10', split 'train' (50k, 32x32, 10 classes)
  STL-10        -> name 'stl10', split 'unlabelled' (100k, 96x96, no labels; resized to R)
  TinyImageNet  -> not in the TFDS catalogue. Use the `folder` source on tiny-imagenet-200/train
                   (200 class folders), or 'imagenet_resized/64x64' (1000 classes) as the
                   nearest TFDS dataset.
This module never downloads: training machines may be offline, and a silent multi-GB download
(or a hang on a dead network) is worse than an error that says how to prepare the data.
"""

from __future__ import annotations

import numpy as np

from adapt_jax.data import images
from adapt_jax.data.source import Source


def _prepare_hint(name: str, data_dir: str) -> str:
    target = data_dir or "~/tensorflow_datasets"
    return (f"Prepare it on a machine with internet access:\n"
            f"    tfds build {name} --data_dir={target} --file_format=array_record\n"
            f"then copy that directory here and point data.data_dir at it "
            f"(data.data_dir={data_dir!r}; '' means the TFDS default ~/tensorflow_datasets "
            f"or $TFDS_DATA_DIR).")


def open_data_source(name: str, split: str, data_dir: str):
    """(builder, random-access source), failing fast with a how-to-prepare message.

    `tfds.builder` only reads local metadata (try_gcs is off) and `as_data_source` never
    downloads, so an unprepared dataset costs well under a second to detect. The preparedness
    check runs after a failure rather than before, so `tfds.testing.mock_data` still works.
    """
    import tensorflow_datasets as tfds  # lazy: only runs that use TFDS pay the import

    builder = tfds.builder(name, data_dir=data_dir or None)
    try:
        return builder, builder.as_data_source(split=split)
    except Exception as err:
        if not builder.is_prepared():
            raise FileNotFoundError(
                f"TFDS dataset {name!r} is not prepared at {builder.data_dir} and this "
                f"project does not download. {_prepare_hint(name, data_dir)}") from err
        raise ValueError(
            f"Cannot open split {split!r} of TFDS dataset {name!r} at {builder.data_dir} "
            f"(prepared splits: {sorted(builder.info.splits)}). Random access needs the "
            f"array_record format; convert with `tfds convert_format "
            f"--dataset_version_dir={builder.data_dir} --out_file_format=array_record`. "
            f"Cause: {err}") from err


def label_classes(features, split: str) -> int:
    """Class count of the 'label' feature; 0 for unlabelled splits (STL-10 stores -1 there)."""
    label = features["label"] if "label" in features.keys() else None
    if label is None or split.startswith("unlabelled") or not hasattr(label, "num_classes"):
        return 0
    return int(label.num_classes)


class TfdsSource(Source):
    """Decodes (and resizes, when the stored size differs from R) on every `get`.

    Nothing is cached: the datasets are large and ArrayRecord reads are cheap.
    """

    def __init__(self, name: str, split: str, data_dir: str, resolution: int,
                 use_labels: bool = True):
        builder, self._ds = open_data_source(name, split, data_dir)
        self.num_classes = label_classes(builder.info.features, split) if use_labels else 0
        self.num_examples = len(self._ds)
        self.resolution = resolution
        self.description = f"tfds:{name}[{split}]"

    def _get(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # Item by item: `__getitems__` is broken under tfds.testing.mock_data in TFDS 4.9.10,
        # and image decoding, not record reads, dominates the cost anyway.
        examples = [self._ds[int(i)] for i in indices]
        batch = np.stack([images.fit(ex["image"], self.resolution) for ex in examples])
        if self.num_classes:
            labels = np.array([ex["label"] for ex in examples], np.int32)
        else:
            labels = np.zeros(len(examples), np.int32)
        return batch, labels
