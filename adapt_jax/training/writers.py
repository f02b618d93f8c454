"""Metric writers with clu's interface, on TensorBoard's own event files: no TensorFlow.

clu's default writer records through `tf.summary`, and `clu.metric_writers` imports TensorFlow
as soon as it is imported (1.4 GB installed, 10-25 s to import). TensorBoard only needs event
files, which its own package can write: records (`RecordWriter`) of `Event` protos whose
summaries carry the same tensors and plugin metadata `tf.summary` v2 writes, so TensorBoard
(and its `EventAccumulator`) reads them exactly as it reads clu's.

    writer = create_writer(workdir, jax.process_index())   # absl log + TensorBoard on process 0
    writer.write_scalars(step, {"d_loss": 0.7})
    writer.write_images(step, {"samples": grid})            # (H, W, C) or (N, H, W, C)
    writer.flush()

The classes keep clu's `MetricWriter` method names and signatures (`write_scalars`,
`write_images`, `write_texts`, `write_histograms`, `write_hparams`, `write_summaries`, `flush`,
`close`) so code written for clu works unchanged; clu itself cannot be imported without
TensorFlow, so they do not subclass it.
"""

from __future__ import annotations

import abc
import io
import itertools
import os
import socket
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
from absl import logging

_FILE_COUNTER = itertools.count()


class MetricWriter(abc.ABC):
    """clu's writer interface (the subset TensorBoard can show, plus flush/close)."""

    @abc.abstractmethod
    def write_scalars(self, step: int, scalars: Mapping[str, Any]) -> None: ...

    @abc.abstractmethod
    def write_images(self, step: int, images: Mapping[str, Any]) -> None: ...

    @abc.abstractmethod
    def write_texts(self, step: int, texts: Mapping[str, str]) -> None: ...

    @abc.abstractmethod
    def write_histograms(self, step: int, arrays: Mapping[str, Any],
                         num_buckets: Mapping[str, int] | None = None) -> None: ...

    @abc.abstractmethod
    def write_hparams(self, hparams: Mapping[str, Any]) -> None: ...

    @abc.abstractmethod
    def write_summaries(self, step: int, values: Mapping[str, Any],
                        metadata: Mapping[str, Any] | None = None) -> None: ...

    def write_videos(self, step: int, videos: Mapping[str, Any]) -> None:
        logging.log_first_n(logging.WARNING, "%s does not write videos.", 1, type(self).__name__)

    def write_audios(self, step: int, audios: Mapping[str, Any], *, sample_rate: int) -> None:
        logging.log_first_n(logging.WARNING, "%s does not write audio.", 1, type(self).__name__)

    @abc.abstractmethod
    def flush(self) -> None: ...

    def close(self) -> None:
        self.flush()


def _scalar(value: Any) -> float:
    """A Python float from a float, numpy or jax scalar (one device transfer at most)."""
    return float(np.asarray(value))


class LoggingWriter(MetricWriter):
    """Every value as one absl log line per call, at `level` (absl: INFO 0, DEBUG 1)."""

    def __init__(self, level: int = logging.INFO):
        self.level = level

    def _log(self, step: int, what: str, values: Mapping[str, Any]) -> None:
        logging.log(self.level, "[%d] %s: %s", step, what, values)

    def write_scalars(self, step: int, scalars: Mapping[str, Any]) -> None:
        text = ", ".join(f"{k}={_scalar(v):.6g}" for k, v in sorted(scalars.items()))
        logging.log(self.level, "[%d] %s", step, text)

    def write_images(self, step: int, images: Mapping[str, Any]) -> None:
        self._log(step, "images", {k: np.shape(v) for k, v in images.items()})

    def write_texts(self, step: int, texts: Mapping[str, str]) -> None:
        self._log(step, "texts", dict(texts))

    def write_histograms(self, step: int, arrays: Mapping[str, Any],
                         num_buckets: Mapping[str, int] | None = None) -> None:
        self._log(step, "histograms", {k: np.shape(v) for k, v in arrays.items()})

    def write_hparams(self, hparams: Mapping[str, Any]) -> None:
        logging.log(self.level, "hyperparameters: %s", dict(hparams))

    def write_summaries(self, step: int, values: Mapping[str, Any],
                        metadata: Mapping[str, Any] | None = None) -> None:
        self._log(step, "tensors", {k: np.shape(v) for k, v in values.items()})

    def flush(self) -> None:
        """absl's handlers flush themselves."""


def _png(image: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image.squeeze(-1) if image.shape[-1] == 1 else image).save(buffer, "PNG")
    return buffer.getvalue()


def _as_uint8(images: Any) -> np.ndarray:
    """(N, H, W, C) uint8 from uint8 or [0, 1] floats (what `tf.summary.image` accepts)."""
    x = np.asarray(images)
    x = x[None] if x.ndim == 3 else x
    if x.ndim != 4 or x.shape[-1] not in (1, 3, 4):
        raise ValueError(f"images must be (H, W, C) or (N, H, W, C) with C in 1, 3, 4; "
                         f"got shape {x.shape}")
    if x.dtype != np.uint8:
        x = np.clip(np.rint(x.astype(np.float64) * 255.0), 0, 255).astype(np.uint8)
    return x


class TensorBoardWriter(MetricWriter):
    """One event file in `logdir`, written synchronously and flushed after every call.

    Flushing each call costs one write per log interval and means a killed run loses nothing
    that was logged. Local paths use plain files; URLs (gs://, s3://) go through TensorBoard's
    own file layer (fsspec or boto3 must be installed for those).
    """

    def __init__(self, logdir: str):
        from tensorboard.compat.proto import event_pb2
        from tensorboard.summary.writer.record_writer import RecordWriter

        self._event_pb2 = event_pb2
        name = (f"events.out.tfevents.{int(time.time()):010d}.{socket.gethostname()}."
                f"{os.getpid()}.{next(_FILE_COUNTER)}.v2")
        if "://" in logdir:
            from tensorboard.compat.tensorflow_stub.io import gfile

            gfile.makedirs(logdir)
            self._file = gfile.GFile(f"{logdir.rstrip('/')}/{name}", "wb")
        else:
            os.makedirs(logdir, exist_ok=True)
            self._file = open(os.path.join(logdir, name), "wb")  # open until close()
        self.path = f"{logdir.rstrip('/')}/{name}"
        self._records = RecordWriter(self._file)
        self._write(event_pb2.Event(wall_time=time.time(), file_version="brain.Event:2"))

    def _write(self, event) -> None:
        self._records.write(event.SerializeToString())
        self._file.flush()

    def _summary(self, step: int, values: list) -> None:
        from tensorboard.compat.proto import summary_pb2

        summary = summary_pb2.Summary(value=values)
        self._write(self._event_pb2.Event(wall_time=time.time(), step=int(step),
                                          summary=summary))

    def write_scalars(self, step: int, scalars: Mapping[str, Any]) -> None:
        from tensorboard.compat.proto import summary_pb2
        from tensorboard.plugins.scalar import metadata
        from tensorboard.util import tensor_util

        meta = metadata.create_summary_metadata(display_name=None, description=None)
        self._summary(step, [summary_pb2.Summary.Value(
            tag=k, metadata=meta,
            tensor=tensor_util.make_tensor_proto(np.float32(_scalar(v))))
            for k, v in scalars.items()])

    def write_images(self, step: int, images: Mapping[str, Any]) -> None:
        from tensorboard.compat.proto import summary_pb2
        from tensorboard.plugins.image import metadata
        from tensorboard.util import tensor_util

        values = []
        for k, v in images.items():
            x = _as_uint8(v)
            content = [str(x.shape[2]).encode(), str(x.shape[1]).encode()]
            content += [_png(image) for image in x]
            meta = metadata.create_summary_metadata(display_name=None, description=None)
            values.append(summary_pb2.Summary.Value(
                tag=k, metadata=meta,
                tensor=tensor_util.make_tensor_proto(content, dtype=np.object_)))
        self._summary(step, values)

    def write_texts(self, step: int, texts: Mapping[str, str]) -> None:
        from tensorboard.compat.proto import summary_pb2
        from tensorboard.plugins.text import metadata
        from tensorboard.util import tensor_util

        meta = metadata.create_summary_metadata(display_name=None, description=None)
        self._summary(step, [summary_pb2.Summary.Value(
            tag=k, metadata=meta, tensor=tensor_util.make_tensor_proto(str(v).encode()))
            for k, v in texts.items()])

    def write_histograms(self, step: int, arrays: Mapping[str, Any],
                         num_buckets: Mapping[str, int] | None = None) -> None:
        from tensorboard.plugins.histogram import summary_v2

        buckets = num_buckets or {}
        for k, v in arrays.items():
            pb = summary_v2.histogram_pb(k, np.asarray(v), buckets=buckets.get(k))
            self._summary(step, list(pb.value))

    def write_hparams(self, hparams: Mapping[str, Any]) -> None:
        from tensorboard.plugins.hparams import summary_v2

        pb = summary_v2.hparams_pb({k: v.item() if isinstance(v, np.generic) else v
                                    for k, v in hparams.items()})
        self._summary(0, list(pb.value))

    def write_summaries(self, step: int, values: Mapping[str, Any],
                        metadata: Mapping[str, Any] | None = None) -> None:
        from tensorboard.compat.proto import summary_pb2
        from tensorboard.util import tensor_util

        out = []
        for k, v in values.items():
            meta = (metadata or {}).get(k)
            if isinstance(meta, bytes):
                meta = summary_pb2.SummaryMetadata.FromString(meta)
            out.append(summary_pb2.Summary.Value(
                tag=k, metadata=meta, tensor=tensor_util.make_tensor_proto(np.asarray(v))))
        self._summary(step, out)

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()


class MultiWriter(MetricWriter):
    """Forwards every call to each writer, in order (clu's MultiWriter)."""

    def __init__(self, writers: list[MetricWriter]):
        self.writers = list(writers)

    def _each(self, method: str, *args, **kwargs) -> None:
        for w in self.writers:
            getattr(w, method)(*args, **kwargs)

    def write_scalars(self, step, scalars):
        self._each("write_scalars", step, scalars)

    def write_images(self, step, images):
        self._each("write_images", step, images)

    def write_texts(self, step, texts):
        self._each("write_texts", step, texts)

    def write_histograms(self, step, arrays, num_buckets=None):
        self._each("write_histograms", step, arrays, num_buckets)

    def write_hparams(self, hparams):
        self._each("write_hparams", hparams)

    def write_summaries(self, step, values, metadata=None):
        self._each("write_summaries", step, values, metadata)

    def write_videos(self, step, videos):
        self._each("write_videos", step, videos)

    def write_audios(self, step, audios, *, sample_rate):
        self._each("write_audios", step, audios, sample_rate=sample_rate)

    def flush(self):
        self._each("flush")

    def close(self):
        self._each("close")


def create_writer(logdir: str | None, process_index: int = 0, *,
                  log_level: int | None = logging.INFO) -> MultiWriter:
    """clu's `create_default_writer` without TensorFlow: absl log lines on every process (at
    `log_level`; None = none) and TensorBoard events in `logdir` on process 0 only, so a
    multi-host run writes one set of event files."""
    writers: list[MetricWriter] = [] if log_level is None else [LoggingWriter(log_level)]
    if logdir and process_index == 0:
        writers.append(TensorBoardWriter(logdir))
    return MultiWriter(writers)
