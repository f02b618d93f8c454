"""The TensorFlow-free metric writer: what it writes, TensorBoard's own reader reads back."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from absl import logging
from PIL import Image

from adapt_jax.training import writers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _accumulator(logdir):
    from tensorboard.backend.event_processing import event_accumulator

    acc = event_accumulator.EventAccumulator(str(logdir), size_guidance={"tensors": 0})
    acc.Reload()
    return acc


def _value(event) -> np.ndarray:
    from tensorboard.util import tensor_util

    return tensor_util.make_ndarray(event.tensor_proto)


def test_scalars_images_and_texts_read_back_with_tensorboard(tmp_path):
    w = writers.TensorBoardWriter(str(tmp_path))
    w.write_scalars(10, {"d_loss": 0.25, "density_d": np.float32(0.5)})
    w.write_scalars(20, {"d_loss": np.array(0.125)})
    grid = np.zeros((2, 6, 4, 3), np.uint8)
    grid[0, :, :, 0] = 255  # red, then a black image
    grid[1, 2:, :, :] = 77
    w.write_images(20, {"samples": grid})
    w.write_texts(20, {"note": "hello"})
    w.write_histograms(20, {"weights": np.arange(100.0)}, num_buckets={"weights": 5})
    w.close()

    acc = _accumulator(tmp_path)
    assert [(e.step, float(_value(e))) for e in acc.Tensors("d_loss")] == [(10, 0.25),
                                                                            (20, 0.125)]
    assert float(_value(acc.Tensors("density_d")[0])) == 0.5
    assert acc.SummaryMetadata("d_loss").plugin_data.plugin_name == "scalars"
    assert acc.SummaryMetadata("samples").plugin_data.plugin_name == "images"
    (event,) = acc.Tensors("samples")
    width, height, *pngs = _value(event).tolist()
    assert (int(width), int(height), len(pngs)) == (4, 6, 2)
    for png, original in zip(pngs, grid, strict=True):
        np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(png))), original)
    assert _value(acc.Tensors("note")[0]).item() == b"hello"
    histogram = _value(acc.Tensors("weights")[0])
    assert histogram.shape == (5, 3) and histogram[:, 2].sum() == 100


def test_float_and_single_images_and_hparams(tmp_path):
    w = writers.TensorBoardWriter(str(tmp_path))
    w.write_images(1, {"grey": np.full((3, 5, 1), 0.5, np.float32)})
    w.write_hparams({"method": "adapt_relax", "density_g": np.float64(0.2)})
    w.close()
    acc = _accumulator(tmp_path)
    _, _, png = _value(acc.Tensors("grey")[0]).tolist()
    decoded = np.asarray(Image.open(io.BytesIO(png)))
    assert decoded.shape == (3, 5) and (decoded == 128).all()
    assert "_hparams_/session_start_info" in acc.Tags()["tensors"]
    with pytest.raises(ValueError, match="shape"):
        writers.TensorBoardWriter(str(tmp_path)).write_images(1, {"bad": np.zeros((4, 4))})


def test_create_writer_logs_everywhere_and_writes_events_on_process_zero_only(tmp_path,
                                                                               caplog):
    lead, other = tmp_path / "lead", tmp_path / "other"
    for path, index in ((lead, 0), (other, 1)):
        w = writers.create_writer(str(path), process_index=index)
        with caplog.at_level("INFO"):
            w.write_scalars(5, {"g_loss": 1.5})
        w.close()
    assert sum("[5] g_loss=1.5" in r.getMessage() for r in caplog.records) == 2
    assert [f for f in os.listdir(lead) if f.startswith("events.out.tfevents")]
    assert not other.exists()
    quiet = writers.create_writer(str(tmp_path / "tb_only"), 0, log_level=None)
    assert [type(w) for w in quiet.writers] == [writers.TensorBoardWriter]
    debug = writers.create_writer(None, 0, log_level=logging.DEBUG)
    assert [(type(w), w.level) for w in debug.writers] == [(writers.LoggingWriter,
                                                            logging.DEBUG)]


def test_two_writers_in_one_directory_are_one_run(tmp_path):
    """The trainer keeps a second, TensorBoard-only writer next to the main one."""
    a, b = writers.TensorBoardWriter(str(tmp_path)), writers.TensorBoardWriter(str(tmp_path))
    assert a.path != b.path
    a.write_scalars(1, {"x": 1.0})
    b.write_scalars(1, {"y": 2.0})
    a.close()
    b.close()
    assert {"x", "y"} <= set(_accumulator(tmp_path).Tags()["tensors"])


_NO_TENSORFLOW = textwrap.dedent("""
    import sys, tempfile
    import numpy as np
    from adapt_jax import data
    from adapt_jax.training import writers
    from adapt_jax.config_base import get_base_config

    cfg = get_base_config().data
    digits = data.make_source(cfg, 8, 10)
    w = writers.create_writer(tempfile.mkdtemp(), 0)
    w.write_scalars(1, {"loss": 1.0})
    w.write_images(1, {"samples": digits.get(np.arange(4))[0]})
    w.close()
    import tensorflow_datasets as tfds
    with tfds.testing.mock_data(num_examples=4):
        cfg.update(source="tfds", name="cifar10", data_dir=tempfile.mkdtemp())
        images, _ = data.make_source(cfg, 32, 10).get(np.arange(4))
        assert images.shape == (4, 32, 32, 3)
    loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "clu"))
    print("LOADED", loaded)
""")


def test_data_sources_and_writer_never_import_tensorflow():
    """TensorFlow is not a dependency: digits, TFDS (mock, random access) and the writer work
    without importing it, even where it is installed (when it is, an import would show)."""
    pytest.importorskip("tensorflow_datasets")
    run = subprocess.run([sys.executable, "-c", _NO_TENSORFLOW], capture_output=True,
                         text=True, timeout=300, cwd=ROOT)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "LOADED []" in run.stdout, run.stdout
