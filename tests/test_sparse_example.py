"""The documented digits example runs, matches docs/sparse.md, and RigL at 10% density stays
within 3 accuracy points of the same model trained densely."""

import inspect
import pathlib
import re

import pytest

pytest.importorskip("sklearn")
from examples import digits_classifier  # noqa: E402

DOC = pathlib.Path(__file__).resolve().parents[1] / "docs" / "sparse.md"


def test_doc_shows_the_tested_code():
    text = DOC.read_text()
    block = re.search(
        r"<!-- begin digits_classifier.train -->\n```python\n(.*?)```\n<!-- end -->", text, re.S
    )
    assert block, "docs/sparse.md lost its example markers"
    assert block.group(1) == inspect.getsource(digits_classifier.train)


def test_rigl_at_ten_percent_matches_dense():
    dense = digits_classifier.train(density=1.0)
    rigl = digits_classifier.train(density=0.1)
    assert dense["accuracy"] > 0.95
    assert rigl["active"] == round(0.1 * rigl["maskable"])
    assert rigl["accuracy"] >= dense["accuracy"] - 0.03, (rigl["accuracy"], dense["accuracy"])
