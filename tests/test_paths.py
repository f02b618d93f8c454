"""The path layer every written file goes through: resolution, atomic local writes, URLs."""

import os

import numpy as np
import pytest

from adapt_jax import paths
from adapt_jax.training import report


def test_resolve_expands_home_and_makes_local_paths_absolute(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    assert paths.resolve("~/runs/a") == str(tmp_path / "runs" / "a")
    assert paths.resolve("runs/b") == str(tmp_path / "runs" / "b")
    assert paths.resolve("gs://bucket/runs/c/") == "gs://bucket/runs/c"
    assert paths.join("gs://bucket/runs/", "c", "summary.json") == "gs://bucket/runs/c/summary.json"
    assert paths.join("/x", "y") == "/x/y"


def test_local_writes_use_a_unique_temporary_name_then_rename(tmp_path, monkeypatch):
    """Two writers of one file (two hosts, or a retried job) never share a temporary file."""
    target = str(tmp_path / "summary.json")
    sources = []
    real_replace = os.replace

    def recording_replace(src, dst):
        sources.append(src)
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", recording_replace)
    paths.write_json(target, {"a": 1})
    paths.write_json(target, {"a": 2})
    assert len(set(sources)) == 2 and f"{target}.tmp" not in sources
    assert all(os.path.dirname(s) == str(tmp_path) for s in sources)  # same filesystem
    assert paths.read_json(target) == {"a": 2}
    assert os.listdir(tmp_path) == ["summary.json"]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    target = str(tmp_path / "config.json")
    paths.write_json(target, {"old": True})

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        paths.write_json(target, {"new": True})
    assert paths.read_json(target) == {"old": True}
    assert os.listdir(tmp_path) == ["config.json"]


class FakeBucket:
    """Stands in for etils.epath on a URL: records whole-object uploads."""

    objects: dict[str, bytes] = {}

    def __init__(self, path):
        self.path = str(path)

    def write_bytes(self, data):
        FakeBucket.objects[self.path] = data

    def read_text(self):
        return FakeBucket.objects[self.path].decode()

    def mkdir(self, parents, exist_ok):
        pass


def test_report_files_go_to_a_bucket_through_epath(monkeypatch, tmp_path):
    monkeypatch.setattr(paths, "_epath", FakeBucket)
    monkeypatch.chdir(tmp_path)
    FakeBucket.objects = {}
    run = "gs://bucket/runs/a"
    report.write_json_atomic(paths.join(run, "summary.json"), {"br": 0.5})
    report.save_png(paths.join(run, "samples.png"), np.zeros((4, 4, 3), np.uint8), scale=2)
    report.plot_balance(paths.join(run, "balance.png"), [(1, 0.5)], [(0, 0.45, 0.55)], [(1, 0.3)])
    assert sorted(FakeBucket.objects) == [f"{run}/balance.png", f"{run}/samples.png",
                                          f"{run}/summary.json"]
    assert FakeBucket.objects[f"{run}/samples.png"].startswith(b"\x89PNG")
    assert paths.read_json(f"{run}/summary.json") == {"br": 0.5}
    assert not os.listdir(tmp_path)  # nothing went to a local file named like the URL
