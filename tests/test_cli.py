"""What a new user gets for the mistakes new users make: one line, exit code 2, no traceback;
and `--help` that names the fields people change."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
from PIL import Image

from adapt_jax import main
from adapt_jax.config_base import get_base_config
from adapt_jax.gan import methods

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = "--config=configs/biggan_tiny.py"


def _folder(root, good: int = 0, bad: int = 0) -> str:
    root.mkdir(parents=True, exist_ok=True)
    for i in range(good):
        Image.new("RGB", (8, 8), (i, 0, 0)).save(root / f"{i}.png")
    for i in range(bad):
        (root / f"bad{i}.png").write_bytes(b"not an image")
    return str(root)


def _cases(tmp) -> dict[str, tuple[list[str], str]]:
    """Row name -> (arguments, the fragment its one-line error must contain)."""
    (tmp / "a_file").write_text("x")
    return {
        "config path missing": (["--config=configs/nope.py"],
                                "--config=configs/nope.py: no such file"),
        "config path missing, with overrides": (
            ["--config=configs/nope.py", "--config.train.num_iters=3"],
            "--config=configs/nope.py: no such file"),
        "no config": ([], "--config is required, e.g. --config=configs/biggan_tiny.py"),
        "unknown config section": (
            [TINY, "--config.trian.num_iters=3"],
            "--config.trian.num_iters: the config has no field 'trian'; did you mean 'train'? "
            "every field is in adapt_jax/config_base.py"),
        "unknown config field": (
            [TINY, "--config.train.num_iter=3"],
            "the config has no field 'num_iter'; did you mean 'num_iters'?"),
        "value of the wrong type": ([TINY, "--config.train.num_iters=abc"],
                                    "--config.train.num_iters=abc: invalid literal"),
        "unknown flag": ([TINY, "--workdr=x"], "Unknown command line flag 'workdr'"),
        "workdir is a file": ([TINY, f"--workdir={tmp / 'a_file'}"], "is a file; give a "
                                                                      "directory"),
        "workdir under a file": ([TINY, f"--workdir={tmp / 'a_file' / 'run'}"],
                                 f"cannot be created: {tmp / 'a_file'} is a file"),
        "method misspelt": ([TINY, "--config.method=adapt_relx", f"--workdir={tmp / 'w1'}"],
                            "config.method='adapt_relx' is unknown; did you mean "
                            "'adapt_relax'?"),
        "folder without images": (
            [TINY, "--config.data.source=folder", f"--config.data.path={_folder(tmp / 'e')}",
             f"--workdir={tmp / 'w2'}"], "contains no .png/.jpg/.jpeg images"),
        "folder of unreadable files": (
            [TINY, "--config.data.source=folder",
             f"--config.data.path={_folder(tmp / 'u', bad=2)}", "--config.train.batch_d=2",
             f"--workdir={tmp / 'w3'}"],
            "none of its 2 images can be read (e.g. "),
        "fewer images than one batch": (
            [TINY, "--config.data.source=folder",
             f"--config.data.path={_folder(tmp / 'f', good=3)}", f"--workdir={tmp / 'w4'}"],
            "has 3 images, fewer than one batch (train.batch_d=64); add images or lower "
            "--config.train.batch_d to at most 3"),
    }


@pytest.fixture(scope="module")
def cli_errors(tmp_path_factory):
    """Every row's process at once (most stop before importing jax): name -> (rc, stderr)."""
    tmp = tmp_path_factory.mktemp("cli")
    cases = _cases(tmp)
    assert sorted(cases) == sorted(ROWS)
    procs = {name: subprocess.Popen([sys.executable, "-m", "adapt_jax.main", *args], cwd=ROOT,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for name, (args, _) in cases.items()}
    results = {}
    for name, proc in procs.items():
        _, err = proc.communicate(timeout=600)
        results[name] = (proc.returncode, err, cases[name][1])
    return results


ROWS = ["config path missing", "config path missing, with overrides", "no config",
        "unknown config section", "unknown config field", "value of the wrong type",
        "unknown flag", "workdir is a file", "workdir under a file", "method misspelt",
        "folder without images", "folder of unreadable files", "fewer images than one batch"]


@pytest.mark.parametrize("name", ROWS)
def test_bad_input_is_one_line_and_exit_code_2(cli_errors, name):
    rc, stderr, fragment = cli_errors[name]
    errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert rc == 2 and "Traceback" not in stderr, stderr[-3000:]
    assert len(errors) == 1 and fragment in errors[0], stderr[-3000:]


def test_help_names_the_common_fields_and_where_all_are():
    proc = subprocess.run([sys.executable, "-m", "adapt_jax.main", "--help"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    text = proc.stdout
    fields = re.findall(r"--config\.([\w.]+)=", text)
    for wanted in ("method", "sparse.density_g", "sparse.density_d", "train.num_iters",
                   "data.source", "data.path"):
        assert wanted in fields, wanted
    base = get_base_config()
    for field in set(fields) - {"FIELD"}:  # each named field exists: the help cannot go stale
        section, _, leaf = field.rpartition(".")
        assert leaf in (base[section] if section else base), field
    assert "--workdir=" in text and "adapt_jax/config_base.py" in text
    assert all(m in text for m in methods.METHODS)


def test_workdir_is_absolute_and_expands_home(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    assert main.resolve_workdir("~/runs/a", "configs/x.py") == str(tmp_path / "runs" / "a")
    assert main.resolve_workdir("rel/b", "configs/x.py") == str(tmp_path / "rel" / "b")
    assert main.resolve_workdir(None, "configs/biggan_tiny.py:static") == str(
        tmp_path / "runs" / "biggan_tiny")
    assert not (tmp_path / "rel").exists()  # created by the run, after its config is checked


def test_classes_follow_own_images_unless_set(tmp_path, caplog):
    """configs/biggan_tiny.py says 10 classes (digits); a folder of unlabelled images makes
    the run unconditional, logged once, unless --config.model.num_classes was given."""
    from configs.biggan_tiny import get_config

    config = get_config()
    config.data.update(source="folder", path=_folder(tmp_path / "imgs", good=70))
    with caplog.at_level("INFO"):
        main.prepare(config, explicit_fields={})
    assert config.model.num_classes == 0
    notes = [r.getMessage() for r in caplog.records if "model.num_classes" in r.getMessage()]
    assert notes == [f"model.num_classes=0 from the data (folder:{tmp_path / 'imgs'}: no "
                     "labels, unconditional); set --config.model.num_classes to override"]
    config.model.num_classes = 10
    main.prepare(config, explicit_fields={"model.num_classes": 10})
    assert config.model.num_classes == 10
