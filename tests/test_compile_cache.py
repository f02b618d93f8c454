"""The trainer's persistent compilation cache: on by default, JAX's own setting wins."""

import os
import subprocess
import sys

import jax

from adapt_jax.config_base import get_base_config
from adapt_jax.training import compile_cache
from adapt_jax.training.validation import is_resumable_change

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# A process without JAX's setting compiles first (as user code or a notebook cell would), then
# enables the cache: what it compiles afterwards, however small, lands in the directory.
SCRIPT = """
import os, sys
import jax, jax.numpy as jnp
from adapt_jax.training import compile_cache
jax.jit(lambda x: x + 1)(jnp.ones(3)).block_until_ready()
print(compile_cache.enable(sys.argv[1]))
print(compile_cache.enable('') is None)  # '' asks for no cache; the one in use stays
jax.jit(lambda x: x * 3 - 2)(jnp.ones(5)).block_until_ready()
print(len(os.listdir(sys.argv[1])))
"""


def _enable_in_fresh_process(directory) -> list[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_PERSISTENT_CACHE")}
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(directory)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout.split()


def test_small_executables_compiled_after_enabling_are_cached(tmp_path):
    directory = tmp_path / "nested" / "cache"
    path, empty_is_none, entries = _enable_in_fresh_process(directory)
    assert path == str(directory)
    assert empty_is_none == "False"  # JAX's setting (now ours) stays in force
    assert int(entries) >= 1


def test_jax_own_setting_wins_and_nothing_is_created(tmp_path):
    ours = jax.config.jax_compilation_cache_dir  # the test session's (tests/conftest.py)
    assert ours
    assert compile_cache.enable(str(tmp_path / "other")) == ours
    assert not (tmp_path / "other").exists()


def test_default_is_on_and_changing_it_never_blocks_a_resume():
    assert get_base_config().train.compilation_cache
    assert is_resumable_change("train.compilation_cache")
