"""The README's promises, checked as a new user would meet them: its quick start and tools
commands run as printed (relative paths, from a fresh directory), and its install commands
install what the code imports."""

from __future__ import annotations

import ast
import importlib.metadata
import os
import re
import runpy
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import setuptools
from test_reliability import CLI_OVERRIDES

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def _section(title: str) -> str:
    """The README text under a heading, up to the next heading of the same or higher level."""
    match = re.search(rf"^(#+) {re.escape(title)}.*?$", README, re.M)
    assert match, title
    level = len(match.group(1))
    end = re.compile(rf"^#{{1,{level}}} ", re.M).search(README, match.end())
    return README[match.end():end.start() if end else None]


def _commands(title: str) -> list[list[str]]:
    """`python -m adapt_jax.*` commands of a section's bash blocks (pip steps and comments off,
    `\\` continuations joined)."""
    out = []
    for block in re.findall(r"```bash\n(.*?)```", _section(title), re.S):
        for line in block.replace("\\\n", " ").splitlines():
            for part in line.split("&&"):
                words = shlex.split(part, comments=True)
                if words[:3] == ["python", "-m", "adapt_jax.main"] or (
                        words[:2] == ["python", "-m"] and words[2].startswith("adapt_jax.")):
                    out.append(words)
    return out


# What each command gets appended: the tiny model of the CLI tests (its compiled steps are in
# the shared cache) and few samples. Everything the README wrote stays as written.
TINY_RUN = [*CLI_OVERRIDES, "--config.train.num_iters=20", "--config.train.ckpt_every=10"]
APPENDED = {"adapt_jax.main": TINY_RUN, "adapt_jax.sample": ["--num=64", "--batch_size=32"]}


@pytest.fixture(scope="module")
def readme_dir(tmp_path_factory) -> Path:
    """A fresh directory holding what a clone holds next to the package (configs/)."""
    d = tmp_path_factory.mktemp("clone")
    shutil.copytree(ROOT / "configs", d / "configs")
    return d


def _run(words: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, *words[1:], *APPENDED.get(words[2], [])], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=1200)


def test_readme_lists_the_commands_this_test_runs():
    quick = _commands("Quick start")
    tools = _commands("Tools")
    assert [c[2] for c in quick] == ["adapt_jax.main"]
    assert [c[2] for c in tools] == ["adapt_jax.inspect", "adapt_jax.sample", "adapt_jax.export"]


@pytest.mark.slow
@pytest.mark.xdist_group("cli_runs")
def test_quick_start_then_tools_as_written(readme_dir):
    (train,) = _commands("Quick start")
    run = _run(train, readme_dir)
    assert run.returncode == 0, run.stderr[-4000:]
    workdir = readme_dir / "runs" / "biggan_tiny"  # where the README says the files are
    for name in ("samples.png", "balance.png", "summary.json", "config.json"):
        assert (workdir / name).is_file(), name
    assert any(f.startswith("events.out.tfevents") for f in os.listdir(workdir))
    assert (workdir / "checkpoints").is_dir()
    last = run.stdout.strip().splitlines()
    assert any("best cfd" in line for line in last) and f"{workdir}/" in run.stdout

    for words in _commands("Tools"):  # relative --workdir and --out, as printed
        result = _run(words, readme_dir)
        assert result.returncode == 0, (words, result.stderr[-3000:])
    assert (readme_dir / "samples.npz").is_file() and (readme_dir / "g.npz").is_file()


# ----------------------------------------------------------------------------- install


def _setup_kwargs(monkeypatch) -> dict:
    captured = {}
    monkeypatch.setattr(setuptools, "setup", lambda **kw: captured.update(kw))
    monkeypatch.chdir(ROOT)
    runpy.run_path(str(ROOT / "setup.py"))
    return captured


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def test_install_commands_name_extras_that_exist(monkeypatch):
    kw = _setup_kwargs(monkeypatch)
    extras = kw["extras_require"]
    named = re.findall(r'pip install -e "\.\[(\w+)\]"', README)
    assert {"train", "test"} <= set(named) and set(named) <= set(extras)
    assert 'pip install -e ".[test]" && python -m pytest -n 2' in README
    assert 'python -m pip install --quiet -e ".[test]"' in (ROOT / ".ci" / "run").read_text()
    assert set(map(_name, extras["train"])) <= set(map(_name, extras["test"]))
    assert kw["python_requires"] == ">=3.11"


def test_library_install_is_light_and_nothing_needs_tensorflow(monkeypatch):
    kw = _setup_kwargs(monkeypatch)
    assert set(map(_name, kw["install_requires"])) == {"jax", "jaxlib", "optax", "numpy"}
    every = [*kw["install_requires"], *(r for rs in kw["extras_require"].values() for r in rs)]
    assert not [r for r in every if _name(r).startswith("tensorflow-cpu")
                or _name(r) in ("tensorflow", "clu")]


# Imports whose package is deliberately not installed, with the reason.
OPTIONAL_IMPORTS = {"torch": "convert_pytorch_fid runs on a machine with torch"}


def _third_party_imports(paths) -> set[str]:
    found = set()
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module] if isinstance(node, ast.ImportFrom) and not node.level
                     else [])
            found |= {n.split(".")[0] for n in names}
    return found - set(sys.stdlib_module_names) - {"adapt_jax", "__future__"}


def test_every_import_is_installed_by_the_extra_that_needs_it(monkeypatch):
    """The sparse library imports only core packages; everything else only what `train`
    installs."""
    kw = _setup_kwargs(monkeypatch)
    core = set(map(_name, kw["install_requires"]))
    train = core | set(map(_name, kw["extras_require"]["train"]))
    dists = importlib.metadata.packages_distributions()

    def missing(paths, allowed):
        return {m for m in _third_party_imports(paths) - set(OPTIONAL_IMPORTS)
                if not {_name(d) for d in dists.get(m, [m])} & allowed}

    package = ROOT / "adapt_jax"
    library = [p for p in (package / "sparse").rglob("*.py") if "examples" not in p.parts]
    assert missing(library, core) == set()
    assert missing(package.rglob("*.py"), train) == set()


def test_launchers_install_the_train_extra():
    """The TPU VM script and the Colab notebook train, so each install of this checkout (an
    editable `-e` one) must name the train extra, not only the library."""
    launch = ROOT / "launch"
    script = [ln for ln in (launch / "tpu_vm.sh").read_text().splitlines()
              if "pip install" in ln and " -e " in ln]
    notebook = [ln for ln in (launch / "colab.ipynb").read_text().splitlines()
                if 'pip(\\"-e\\"' in ln]
    assert script and notebook
    assert all("[train]" in ln for ln in script + notebook), script + notebook
    # Colab's own builds stay: no TensorFlow install, and jax only upgraded (with its plugin)
    # when Colab's is older than setup.py allows.
    installs = [ln for ln in (launch / "colab.ipynb").read_text().splitlines() if "pip(" in ln]
    assert not [ln for ln in installs if "tensorflow" in ln], installs
    assert "and jax_too_old()" in (launch / "colab.ipynb").read_text()
