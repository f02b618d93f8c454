"""Tests for adapt_jax.data: sources, deterministic batches, TFDS without network, sharding."""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import sys
import textwrap
import time
import zlib

import jax
import numpy as np
import pytest
from PIL import Image

from adapt_jax import data
from adapt_jax.config_base import get_base_config
from adapt_jax.data.digits import digits_uint8


def data_cfg(**overrides):
    cfg = get_base_config().data
    cfg.update(overrides)
    return cfg


@pytest.fixture(scope="module")
def small_digits() -> data.Source:
    """Digits at 8x8: cheap enough for many iterator tests."""
    return data.make_source(data_cfg(), resolution=8, num_classes=10)


# ----------------------------------------------------------------------------- digits


@pytest.mark.parametrize("resolution", [16, 32])
def test_digits_shapes_labels_and_resemblance(resolution):
    source = data.make_source(data_cfg(), resolution, num_classes=10)
    raw, targets = digits_uint8()
    assert (source.num_examples, source.num_classes, source.resolution) == (1797, 10, resolution)
    images, labels = source.get(np.arange(source.num_examples))
    assert images.shape == (1797, resolution, resolution, 3) and images.dtype == np.uint8
    assert labels.dtype == np.int32 and set(labels.tolist()) == set(range(10))
    np.testing.assert_array_equal(labels, targets)
    assert images.max() > 200 and images.min() == 0  # full uint8 range, not 0..16
    np.testing.assert_array_equal(images[..., 0], images[..., 2])  # grey replicated to RGB
    # Block-average back to 8x8 and compare with sklearn's originals image by image.
    k = resolution // 8
    small = images[..., 0].astype(np.float64).reshape(-1, 8, k, 8, k).mean(axis=(2, 4))
    a = small.reshape(1797, -1) - small.reshape(1797, -1).mean(1, keepdims=True)
    b = raw.reshape(1797, -1) - raw.reshape(1797, -1).mean(1, keepdims=True)
    corr = (a * b).sum(1) / np.sqrt((a * a).sum(1) * (b * b).sum(1))
    assert corr.min() > 0.8 and corr.mean() > 0.95


def test_get_rejects_out_of_range(small_digits):
    with pytest.raises(IndexError, match="1797"):
        small_digits.get(np.array([0, 1797]))
    images, labels = small_digits.get(np.array([], np.int64))
    assert images.shape == (0, 8, 8, 3) and labels.shape == (0,)


# ----------------------------------------------------------------------------- make_source


def test_unknown_source_lists_valid_ones():
    with pytest.raises(ValueError, match="digits, folder, tfds"):
        data.make_source(data_cfg(source="mnist"), 32, 0)


def test_conditional_model_needs_matching_labels():
    with pytest.raises(ValueError, match="has no labels"):
        data.make_source(data_cfg(use_labels=False), 8, num_classes=10)
    with pytest.raises(ValueError, match="has 10 classes"):
        data.make_source(data_cfg(), 8, num_classes=7)
    unlabelled = data.make_source(data_cfg(use_labels=False), 8, num_classes=0)
    assert unlabelled.num_classes == 0 and not unlabelled.get(np.arange(5))[1].any()


# ----------------------------------------------------------------------------- BatchIterator


def take(it: data.BatchIterator, n: int) -> list[tuple[np.ndarray, np.ndarray]]:
    return [it.next() for _ in range(n)]


def test_iterator_output_format(small_digits):
    images, labels = data.BatchIterator(small_digits, 16, seed=0, flip=True).next()
    assert images.shape == (16, 8, 8, 3) and images.dtype == np.float32
    assert labels.shape == (16,) and labels.dtype == np.int32
    assert images.min() >= -1.0 and images.max() <= 1.0 and images.min() == -1.0


def test_iterator_resumes_exactly_across_epochs(small_digits):
    n = 4  # batch 500 -> 3 batches per epoch, so 2n batches cross two epoch boundaries
    full = take(data.BatchIterator(small_digits, 500, seed=3, flip=True), 2 * n)
    first = data.BatchIterator(small_digits, 500, seed=3, flip=True)
    head = take(first, n)
    assert first.position == n
    tail = take(data.BatchIterator(small_digits, 500, seed=3, flip=True, position=n), n)
    for (xa, ya), (xb, yb) in zip(full, head + tail, strict=True):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    other_seed = data.BatchIterator(small_digits, 500, seed=4, flip=True).next()
    assert not np.array_equal(full[0][0], other_seed[0])


def test_epoch_visits_every_index_once(small_digits):
    exact = data.BatchIterator(small_digits, 599, seed=0, flip=False)  # 3 * 599 = 1797
    seen = np.concatenate([exact.indices(p) for p in range(3)])
    np.testing.assert_array_equal(np.sort(seen), np.arange(1797))
    dropped = data.BatchIterator(small_digits, 100, seed=0, flip=False)  # 17 batches, drop 97
    assert dropped.steps_per_epoch == 17
    epoch0 = np.concatenate([dropped.indices(p) for p in range(17)])
    epoch1 = np.concatenate([dropped.indices(p) for p in range(17, 34)])
    assert len(np.unique(epoch0)) == 1700 and len(np.unique(epoch1)) == 1700
    assert not np.array_equal(epoch0, epoch1)  # reshuffled every epoch


def test_labels_follow_indices(small_digits):
    it = data.BatchIterator(small_digits, 32, seed=1, flip=False)
    _, labels = it.next()
    np.testing.assert_array_equal(labels, small_digits.get(it.indices(0))[1])


def test_flip_mirrors_some_images_deterministically(small_digits):
    plain = take(data.BatchIterator(small_digits, 64, seed=5, flip=False), 3)
    flipped = take(data.BatchIterator(small_digits, 64, seed=5, flip=True), 3)
    again = take(data.BatchIterator(small_digits, 64, seed=5, flip=True), 3)
    for (x0, _), (x1, _), (x2, _) in zip(plain, flipped, again, strict=True):
        np.testing.assert_array_equal(x1, x2)
        same = (x0 == x1).all(axis=(1, 2, 3))
        mirrored = (x0[:, :, ::-1] == x1).all(axis=(1, 2, 3))
        assert (same | mirrored).all()
        assert 10 < (mirrored & ~same).sum() < 54  # ~half flipped


def test_process_slices_concatenate_to_global_batch(small_digits):
    whole = data.BatchIterator(small_digits, 12, seed=2, flip=True).next()
    parts = [data.BatchIterator(small_digits, 12, seed=2, flip=True, process_index=i,
                                process_count=3).next() for i in range(3)]
    np.testing.assert_array_equal(whole[0], np.concatenate([p[0] for p in parts]))
    np.testing.assert_array_equal(whole[1], np.concatenate([p[1] for p in parts]))


def test_iterator_rejects_bad_batch_sizes(small_digits):
    with pytest.raises(ValueError, match="batch_size=2000"):
        data.BatchIterator(small_digits, 2000, seed=0, flip=False)
    with pytest.raises(ValueError, match="processes"):
        data.BatchIterator(small_digits, 10, seed=0, flip=False, process_index=0,
                           process_count=3)
    with pytest.raises(ValueError, match="process_index=3"):
        data.BatchIterator(small_digits, 12, seed=0, flip=False, process_index=3,
                           process_count=3)


# ----------------------------------------------------------------------------- TFDS


@pytest.fixture
def no_network(monkeypatch):
    """Refuse connections and fail the test afterwards if any was attempted (even if caught)."""
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("network disabled in tests")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    yield
    assert not attempts, f"network access attempted: {attempts}"


@pytest.fixture(scope="module")
def tfds():
    return pytest.importorskip("tensorflow_datasets")


def test_tfds_cifar10_via_mock(tfds, no_network, tmp_path):
    with tfds.testing.mock_data(num_examples=12):
        cfg = data_cfg(source="tfds", name="cifar10", split="train", data_dir=str(tmp_path))
        source = data.make_source(cfg, 32, num_classes=10)
        assert (source.num_examples, source.num_classes) == (12, 10)
        images, labels = source.get(np.arange(12))
        assert images.shape == (12, 32, 32, 3) and images.dtype == np.uint8
        assert labels.dtype == np.int32 and ((labels >= 0) & (labels < 10)).all()
        x, y = data.BatchIterator(source, 4, seed=0, flip=True).next()
        assert x.shape == (4, 32, 32, 3) and y.shape == (4,)
        assert data.make_source(cfg, 16, 10).get(np.arange(2))[0].shape == (2, 16, 16, 3)


def test_tfds_describe_reads_size_and_classes_from_metadata(tfds, no_network, tmp_path):
    with tfds.testing.mock_data(num_examples=5):
        cfg = data_cfg(source="tfds", name="cifar10", split="train", data_dir=str(tmp_path))
        assert data.describe(cfg) == data.DataInfo(5, 10, "tfds:cifar10[train]")


def test_tfds_stl10_unlabelled_via_mock(tfds, no_network):
    with tfds.testing.mock_data(num_examples=6):
        cfg = data_cfg(source="tfds", name="stl10", split="unlabelled")
        source = data.make_source(cfg, 48, num_classes=0)
        assert (source.num_examples, source.num_classes) == (6, 0)
        images, labels = source.get(np.arange(6))
        assert images.shape == (6, 48, 48, 3) and not labels.any()  # resized from 96
        with pytest.raises(ValueError, match="has no labels"):
            data.make_source(cfg, 48, num_classes=10)


def test_tfds_not_prepared_fails_fast(tfds, no_network, tmp_path):
    cfg = data_cfg(source="tfds", name="cifar10", data_dir=str(tmp_path / "tfds"))
    start = time.monotonic()
    with pytest.raises(FileNotFoundError) as err:
        data.make_source(cfg, 32, num_classes=0)
    assert time.monotonic() - start < 30
    message = str(err.value)
    assert "not prepared" in message and "data.data_dir" in message
    assert str(tmp_path / "tfds") in message and "tfds build cifar10" in message


# ----------------------------------------------------------------------------- folder


def write_image(path, size=(20, 12), color=(200, 30, 30), mode="RGB"):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, color if mode == "RGB" else 128).save(path)


def test_folder_unlabelled_center_crops_and_converts(tmp_path):
    wide = np.zeros((10, 30, 3), np.uint8)
    wide[:, 10:20] = 255  # white centre square between black side bands
    Image.fromarray(wide).save(tmp_path / "a_wide.png")
    write_image(tmp_path / "b_grey.jpg", mode="L")
    write_image(tmp_path / "c.JPEG")
    (tmp_path / "notes.txt").write_text("not an image")
    source = data.make_source(data_cfg(source="folder", path=str(tmp_path)), 16, 0)
    assert (source.num_examples, source.num_classes) == (3, 0)
    images, labels = source.get(np.arange(3))
    assert images.shape == (3, 16, 16, 3) and not labels.any()
    assert images[0].min() == 255  # side bands cropped away
    assert abs(int(images[1].mean()) - 128) <= 2  # greyscale JPEG -> RGB
    assert images[2, ..., 0].mean() > 150 and images[2, ..., 1].mean() < 80  # red JPEG


def test_folder_labels_from_subfolders(tmp_path):
    write_image(tmp_path / "dog" / "images" / "1.jpg")  # nested below its class folder
    write_image(tmp_path / "cat" / "1.png")
    write_image(tmp_path / "cat" / "2.png")
    (tmp_path / "empty").mkdir()
    labelled = data.make_source(data_cfg(source="folder", path=str(tmp_path)), 8, 2)
    assert labelled.num_classes == 2
    np.testing.assert_array_equal(labelled.get(np.arange(3))[1], [0, 0, 1])  # cat, cat, dog
    plain = data.make_source(data_cfg(source="folder", path=str(tmp_path), use_labels=False),
                             8, 0)
    assert plain.num_classes == 0
    write_image(tmp_path / "loose.png")
    with pytest.raises(ValueError, match="mixes class sub-folders"):
        data.make_source(data_cfg(source="folder", path=str(tmp_path)), 8, 0)


@pytest.mark.parametrize("which", ["missing", "empty", "unset"])
def test_folder_bad_path(tmp_path, which):
    path = {"missing": str(tmp_path / "nope"), "empty": str(tmp_path), "unset": ""}[which]
    with pytest.raises(ValueError, match="data.path"):
        data.make_source(data_cfg(source="folder", path=path), 8, 0)


def _png16(path, array: np.ndarray) -> None:
    """A 16-bit PNG written by hand (PIL cannot write 16-bit RGB): grey (H, W), RGB (H, W, 3)."""
    h, w = array.shape[:2]
    colour = 2 if array.ndim == 3 else 0
    rows = b"".join(b"\0" + array[y].astype(">u2").tobytes() for y in range(h))

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    path.write_bytes(b"\x89PNG\r\n\x1a\n"
                     + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, colour, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


GRADIENT = np.linspace(0, 65535, 16).round().astype(np.uint16)[None].repeat(16, axis=0)


@pytest.mark.parametrize("channels", ["grey", "rgb"])
def test_16_bit_pngs_are_scaled_not_clipped(tmp_path, channels):
    """A 0-65535 gradient keeps its shades (convert('RGB') made 16-bit grey near-white)."""
    array = GRADIENT if channels == "grey" else np.stack(
        [GRADIENT, GRADIENT[:, ::-1], np.full_like(GRADIENT, 30000)], axis=-1)
    _png16(tmp_path / "gradient.png", array)
    source = data.make_source(data_cfg(source="folder", path=str(tmp_path)), 16, 0)
    images, _ = source.get(np.arange(1))
    expected = np.rint(array.astype(np.float64) / 257.0)
    expected = np.repeat(expected[..., None], 3, -1) if channels == "grey" else expected
    assert np.abs(images[0].astype(int) - expected).max() <= 1
    assert images[0, 0, 0, 0] == 0 and images[0, 0, -1, 0] == 255


def test_uint16_arrays_are_scaled():
    from adapt_jax.data import images

    np.testing.assert_array_equal(images.fit(GRADIENT, 16)[..., 1],
                                  np.rint(GRADIENT / 257.0).astype(np.uint8))


def _broken_files(root) -> dict[str, str]:
    """One file per way an image can be unusable -> the reason the scan must give."""
    write_image(root / "good" / "a.png")
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(root / "good" / "b.jpg")  # long enough to cut after headers
    (root / "bad").mkdir()
    (root / "bad" / "empty.png").write_bytes(b"")
    (root / "bad" / "text.png").write_bytes(b"this is not a png")
    png = (root / "good" / "a.png").read_bytes()
    (root / "bad" / "cut.png").write_bytes(png[: len(png) // 2])
    jpg = (root / "good" / "b.jpg").read_bytes()
    (root / "bad" / "cut.jpg").write_bytes(jpg[: len(jpg) // 2])
    return {"empty.png": "empty file", "text.png": "unreadable", "cut.png": "Truncated",
            "cut.jpg": "truncated JPEG (no end-of-image marker)"}


def test_folder_skips_unreadable_files_with_a_count_and_names(tmp_path, caplog):
    reasons = _broken_files(tmp_path)
    with caplog.at_level("WARNING"):
        source = data.make_source(data_cfg(source="folder", path=str(tmp_path)), 8, 2)
    assert (source.num_examples, source.num_classes, source.skipped) == (2, 2, 4)
    images, labels = source.get(np.arange(2))  # only good files are left to decode
    assert images.shape == (2, 8, 8, 3) and (labels == 1).all()  # 'good' is class 1 of 2
    (warning,) = [r.getMessage() for r in caplog.records if "skipping" in r.getMessage()]
    assert "skipping 4 of 6 images" in warning and "and 1 more" in warning
    named = [name for name in reasons if name in warning]
    assert len(named) == 3 and all(reasons[n] in warning for n in named)


def test_folder_of_only_unreadable_files_names_one(tmp_path):
    reasons = _broken_files(tmp_path)
    for f in (tmp_path / "good").iterdir():
        f.unlink()
    with pytest.raises(ValueError, match="none of its 4 images can be read") as err:
        data.make_source(data_cfg(source="folder", path=str(tmp_path)), 8, 0)
    assert any(f"{name}: {why}" in str(err.value) for name, why in reasons.items())


def test_decompression_bomb_sized_image_is_skipped_naming_the_limit(tmp_path, caplog,
                                                                    monkeypatch):
    write_image(tmp_path / "small.png", size=(8, 8))
    write_image(tmp_path / "large.png", size=(25, 30))  # 750 pixels: PIL would only warn
    write_image(tmp_path / "huge.png", size=(40, 30))  # 1200 > twice the limit: PIL refuses
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 500)
    with caplog.at_level("WARNING"):
        source = data.make_source(data_cfg(source="folder", path=str(tmp_path)), 8, 0)
    assert source.num_examples == 1
    assert "large.png: 25x30 pixels, above PIL's decompression-bomb limit of 500" in caplog.text
    assert "huge.png: Image size (1200 pixels) exceeds limit" in caplog.text
    assert "MAX_IMAGE_PIXELS=500); shrink it" in caplog.text


def test_fewer_images_than_one_batch_is_one_clear_error(tmp_path):
    for i in range(3):
        write_image(tmp_path / f"{i}.png")
    cfg = data_cfg(source="folder", path=str(tmp_path))
    with pytest.raises(ValueError, match=r"has 3 usable images, fewer than one batch "
                                         r"\(train.batch_d=4\); add images or lower "
                                         r"--config.train.batch_d to at most 3"):
        data.make_source(cfg, 8, 0, batch_size=4)
    assert data.make_source(cfg, 8, 0, batch_size=3).num_examples == 3


# ----------------------------------------------------------------------------- classes


def test_describe_counts_without_decoding(tmp_path):
    assert data.describe(data_cfg()) == data.DataInfo(1797, 10, "digits")
    assert data.describe(data_cfg(use_labels=False)).num_classes == 0
    (tmp_path / "broken.png").write_bytes(b"not decoded by describe")
    write_image(tmp_path / "ok.png")
    info = data.describe(data_cfg(source="folder", path=str(tmp_path)))
    assert (info.num_examples, info.num_classes) == (2, 0)


@pytest.mark.parametrize("layout,expected", [((), 0), (("cat", "dog", "eel"), 3)])
def test_num_classes_follows_a_folder_unless_set(tmp_path, layout, expected):
    for name in layout or ("",):
        write_image(tmp_path / name / "1.png")
    c = get_base_config()
    c.data.update(source="folder", path=str(tmp_path))
    c.model.num_classes = 10  # e.g. from configs/biggan_tiny.py, written for digits
    info = data.describe(c.data)
    note = data.resolve_num_classes(c, info, explicit=False)
    assert c.model.num_classes == expected and f"model.num_classes={expected}" in note
    c.model.num_classes = 7
    assert data.resolve_num_classes(c, info, explicit=True) is None
    assert c.model.num_classes == 7


def test_named_model_keeps_its_own_class_count():
    c = get_base_config()
    c.model.update(name="biggan32", num_classes=10)  # conditional CIFAR-10 architecture
    c.data.use_labels = False
    assert data.resolve_num_classes(c, data.describe(c.data), explicit=False) is None
    assert c.model.num_classes == 10


# ----------------------------------------------------------------------------- to_global


def test_to_global_round_trips_on_one_device():
    mesh = jax.make_mesh((jax.device_count(),), ("data",))
    x = np.arange(8 * 3, dtype=np.float32).reshape(8, 3)
    y = data.to_global(mesh, x)
    assert y.shape == (8, 3) and y.sharding.spec == jax.sharding.PartitionSpec("data")
    np.testing.assert_array_equal(np.asarray(y), x)


_FOUR_DEVICES = textwrap.dedent("""
    import jax, numpy as np
    from adapt_jax import data
    assert jax.device_count() == 4, jax.devices()
    mesh = jax.make_mesh((4,), ("data",))
    x = np.arange(8 * 2, dtype=np.float32).reshape(8, 2)
    y = data.to_global(mesh, x)
    assert len(y.addressable_shards) == 4 and y.sharding.spec == jax.sharding.PartitionSpec("data")
    for shard in y.addressable_shards:
        assert shard.data.shape == (2, 2)
        np.testing.assert_array_equal(np.asarray(shard.data), x[shard.index])
    np.testing.assert_array_equal(np.asarray(y), x)
    try:
        data.to_global(mesh, np.zeros((6, 2), np.float32))
    except ValueError as err:
        print("ERROR:", err)
""")


def test_to_global_shards_over_four_cpu_devices():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4",
               JAX_PLATFORMS="cpu")
    run = subprocess.run([sys.executable, "-c", _FOUR_DEVICES], env=env, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    error = run.stdout.split("ERROR:", 1)[-1]
    assert "batch size 6" in error and "4 devices" in error and "multiple of 4" in error
