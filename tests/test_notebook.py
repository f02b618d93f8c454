"""launch/colab.ipynb runs top to bottom on CPU (install skipped, training shortened)."""

import os

import pytest

nbclient = pytest.importorskip("nbclient")
nbformat = pytest.importorskip("nbformat")
pytest.importorskip("ipykernel")

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
EVAL_CACHE = os.path.join(ROOT, ".pytest_cache", "eval_cache")
# The cell that trains takes ~70 s alone; on a loaded 2-core CI machine, beside the
# multi-process tests, it once took over 300 s. The limit only guards against a hang.
CELL_TIMEOUT_S = 1500


@pytest.mark.slow
def test_colab_notebook_executes_on_cpu(tmp_path, monkeypatch):
    workdir = tmp_path / "run"
    monkeypatch.setenv("ADAPT_NOTEBOOK_SKIP_INSTALL", "1")
    monkeypatch.setenv("ADAPT_NOTEBOOK_ITERS", "6")
    monkeypatch.setenv("ADAPT_NOTEBOOK_WORKDIR", str(workdir))
    monkeypatch.setenv("ADAPT_NOTEBOOK_EVAL_CACHE", EVAL_CACHE)
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")
    nb = nbformat.read(os.path.join(ROOT, "launch", "colab.ipynb"), as_version=4)
    nbclient.NotebookClient(nb, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                            resources={"metadata": {"path": os.path.join(ROOT, "launch")}}
                            ).execute()
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) == 2  # samples.png and balance.png shown inline
    assert (workdir / "summary.json").is_file()
    text = "".join(o.get("text", "") for o in outputs)
    assert "cpu" in text and "iterations: 6" in text
