"""The public face of adapt_jax.sparse: a curated namespace of functions, each documented with a
runnable example (run here as a doctest), and an import that pulls in nothing heavy."""

import doctest
import inspect
import pkgutil
import subprocess
import sys

import pytest

from adapt_jax import sparse

MODULES = sorted(m.name for m in pkgutil.iter_modules(sparse.__path__))


def test_submodules_are_private_and_names_are_what_they_say():
    assert MODULES and all(name.startswith("_") for name in MODULES)
    assert sorted(sparse.__all__) == sorted(n for n in dir(sparse) if not n.startswith("_"))
    assert inspect.isfunction(sparse.drop_grow)  # not shadowed by a module of that name


@pytest.mark.parametrize("name", [n for n in sparse.__all__ if n[0].islower()])
def test_every_public_function_has_an_example(name):
    doc = inspect.getdoc(getattr(sparse, name))
    assert doc and "Example:\n" in doc and ">>> " in doc, name


@pytest.mark.parametrize("module", MODULES)
def test_docstring_examples_run(module):
    mod = sys.modules[f"{sparse.__name__}.{module}"]
    result = doctest.testmod(mod, optionflags=doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.failed == 0


@pytest.mark.parametrize("package", ["adapt_jax", "adapt_jax.sparse"])
def test_import_pulls_in_only_jax_optax_numpy(package):
    code = (
        f"import sys, {package}; "
        "bad = sorted({m.split('.')[0] for m in sys.modules} & "
        "{'tensorflow', 'flax', 'sklearn', 'orbax', 'clu', 'ml_collections', 'scipy'}); "
        "print(bad)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
