"""The sample CLI on a real (tiny) run: count, dtype, determinism, labels, .npz and PNG output,
paths as users type them, damaged checkpoints and one-line errors."""

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from conftest import tiny_config
from PIL import Image

from adapt_jax import training
from adapt_jax.models import sampling
from adapt_jax.tools import sample
from adapt_jax.tools.run_loading import load_generator

SHAPE = (16, 16, 3)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> str:
    workdir = str(tmp_path_factory.mktemp("run"))
    training.run(tiny_config("adapt_relax"), workdir)
    return workdir


def npz(run_dir, path, **kwargs) -> np.ndarray:
    """Images of write_samples(.npz); batches of 4 so the last batch is padded then cut."""
    kwargs = {"num": 6, "batch_size": 4, **kwargs}
    out = sample.write_samples(run_dir, str(path), **kwargs)
    with np.load(out) as f:
        assert f.files == ["x"]
        return f["x"]


def test_count_dtype_range_and_determinism(run_dir, tmp_path):
    x = npz(run_dir, tmp_path / "a.npz", num=7, seed=1)
    assert x.shape == (7, *SHAPE) and x.dtype == np.uint8
    assert x.std() > 1 and 0 < x.mean() < 255  # real images, not a constant or saturated one
    assert not np.array_equal(x[0], x[1])
    np.testing.assert_array_equal(npz(run_dir, tmp_path / "b.npz", num=7, seed=1), x)
    assert not np.array_equal(npz(run_dir, tmp_path / "c.npz", num=7, seed=2), x)


def test_checkpoint_step_selects_that_generator(run_dir, tmp_path):
    """--checkpoint=STEP reads that step: step 20 of the 40-iteration run is another generator
    than the latest, and naming the latest step equals 'latest'."""
    latest = npz(run_dir, tmp_path / "latest.npz", seed=3)
    np.testing.assert_array_equal(npz(run_dir, tmp_path / "s40.npz", seed=3, checkpoint="40"),
                                  latest)
    assert not np.array_equal(npz(run_dir, tmp_path / "s20.npz", seed=3, checkpoint="20"),
                              latest)


def test_labels_reach_the_generator(run_dir, tmp_path, monkeypatch):
    seen = []
    real = sampling.make_generate_fn

    def recording(generator, batch_stats):
        fn = real(generator, batch_stats)

        def generate(params, stats, z, y):
            seen.append(np.asarray(y))
            return fn(params, stats, z, y)

        return generate

    monkeypatch.setattr(sampling, "make_generate_fn", recording)
    three = npz(run_dir, tmp_path / "3.npz", labels="3")
    # 6 images in batches of 4: the second batch's two filler rows (cut) are drawn as without
    # labels, so only the requested rows must be class 3.
    assert [y.tolist() for y in seen[:1]] == [[3] * 4] and seen[1][:2].tolist() == [3, 3]
    five = npz(run_dir, tmp_path / "5.npz", labels="5")
    assert not np.array_equal(three, five)  # same seed, so same z: only the class differs
    seen.clear()
    npz(run_dir, tmp_path / "cycle.npz", num=6, labels="cycle")
    assert np.concatenate(seen)[:6].tolist() == [0, 1, 2, 3, 4, 5]


def test_png_directory_holds_the_npz_images(run_dir, tmp_path):
    x = npz(run_dir, tmp_path / "a.npz", num=5, labels="cycle")
    out = tmp_path / "png"
    sample.write_samples(run_dir, str(out), num=5, batch_size=4, labels="cycle")
    names = sorted(os.listdir(out))
    assert names == [f"{i:06d}.png" for i in range(5)]
    pngs = np.stack([np.asarray(Image.open(out / n)) for n in names])
    np.testing.assert_array_equal(pngs, x)


def test_bad_requests_say_what_is_wrong(run_dir, tmp_path):
    out = str(tmp_path / "x.npz")
    with pytest.raises(ValueError, match="class id"):
        sample.write_samples(run_dir, out, num=2, labels="10")
    with pytest.raises(ValueError, match="'latest', 'best' or a step"):
        sample.write_samples(run_dir, out, num=2, checkpoint="newest")
    with pytest.raises(ValueError, match=r"checkpoint 7 is not in .*it has \[20, 40\]"):
        sample.write_samples(run_dir, out, num=2, checkpoint="7")
    with pytest.raises(FileNotFoundError, match="config.json"):
        sample.write_samples(str(tmp_path / "nope"), out, num=2)
    with pytest.raises(FileNotFoundError, match="directory .*missing does not exist"):
        sample.write_samples(run_dir, str(tmp_path / "missing" / "x.npz"), num=2)
    with pytest.raises(ValueError, match="unconditional"):
        sample.parse_labels("3", 4, num_classes=0)
    assert sample.parse_labels("", 4, num_classes=0) is None


def _copy_run(run_dir, dst) -> str:
    """config.json and checkpoints of the run (what the tools read), to damage or trim."""
    os.makedirs(dst)
    shutil.copy(os.path.join(run_dir, "config.json"), dst)
    shutil.copytree(os.path.join(run_dir, "checkpoints"), os.path.join(dst, "checkpoints"))
    return str(dst)


def test_no_checkpoint_yet_and_no_best_yet_say_so(run_dir, tmp_path):
    """A run that has not saved yet: the trainer has created empty checkpoint directories."""
    wd = _copy_run(run_dir, tmp_path / "young")
    shutil.rmtree(os.path.join(wd, "checkpoints"))
    os.makedirs(os.path.join(wd, "checkpoints"))
    os.makedirs(os.path.join(wd, "checkpoints_best"))
    out = str(tmp_path / "x.npz")
    with pytest.raises(FileNotFoundError, match="has no checkpoint yet"):
        sample.write_samples(wd, out, num=2)
    with pytest.raises(FileNotFoundError, match="has no best checkpoint yet.*--checkpoint=latest"):
        sample.write_samples(wd, out, num=2, checkpoint="best")


def test_damaged_newest_checkpoint_falls_back_without_moving_it(run_dir, tmp_path):
    wd = _copy_run(run_dir, tmp_path / "damaged")
    files = [p for p in (tmp_path / "damaged" / "checkpoints" / "40" / "state").rglob("*")
             if p.is_file()]
    biggest = max(files, key=lambda p: p.stat().st_size)
    with open(biggest, "r+b") as f:
        f.truncate(biggest.stat().st_size // 2)
    assert load_generator(wd).step == 20
    x = npz(wd, tmp_path / "a.npz", seed=3)
    np.testing.assert_array_equal(x, npz(run_dir, tmp_path / "b.npz", seed=3, checkpoint="20"))
    # A tool never moves files: a run may still be writing this directory.
    assert (tmp_path / "damaged" / "checkpoints" / "40").is_dir()
    assert not (tmp_path / "damaged" / "checkpoints_damaged").exists()


def test_cli_takes_relative_paths_and_reports_errors_in_one_line(run_dir, tmp_path):
    """The README's command as written: --workdir and --out relative to the current directory
    (orbax itself wants absolute paths); `~` works the same way."""
    cwd, name = os.path.split(run_dir)
    env = dict(os.environ, PYTHONPATH=ROOT, HOME=str(tmp_path))
    out = tmp_path / "cli.npz"
    cmd = [sys.executable, "-m", "adapt_jax.sample", f"--workdir={name}", "--num=3",
           "--out=~/cli.npz", "--checkpoint=best", "--labels=cycle", "--seed=4",
           "--batch_size=4"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=cwd, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Wrote 3 images" in proc.stdout
    with np.load(out) as f:
        assert f["x"].shape == (3, *SHAPE) and f["x"].dtype == np.uint8
    cmd = [sys.executable, "-m", "adapt_jax.sample", f"--workdir={name}", "--num=3",
           "--out=no/such/dir/x.npz"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=cwd, env=env)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("error: --out=no/such/dir/x.npz: ")
    assert "Traceback" not in proc.stderr
