"""Shared fixtures: a tiny config that exercises every schedule in a few dozen iterations."""

import os

import jax
import pytest

# Identical executables (same model, different method) compile once per test session, in this
# process and in every process a test starts (they inherit the environment: CLI runs,
# multi-process groups, the notebook's kernel).
_CACHE = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".pytest_cache",
                                      "jax_cache"))
# Every executable, not only those over JAX's 1 s default: a training run compiles hundreds of
# small ones (initialisation, mask and checkpoint ops), ~80 of its ~110 s on this CPU.
os.environ["JAX_COMPILATION_CACHE_DIR"] = _CACHE
os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
jax.config.update("jax_compilation_cache_dir", _CACHE)
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)


# The offline score's classifier is trained once per test session, not once per run.
EVAL_CACHE = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".pytest_cache",
                                           "eval_cache"))


def tiny_config(method: str = "adapt_relax", **overrides):
    """biggan at 16x16, width 8, on digits; every event fires within 40 iterations."""
    from adapt_jax.config_base import get_base_config

    c = get_base_config()
    c.method = method
    c.model.update(name="biggan", resolution=16, g_ch=8, d_ch=8, z_dim=16, num_classes=10)
    c.data.update(source="digits", flip=False)
    c.train.update(num_iters=40, n_critic=1, batch_d=16, batch_g=16, log_every=10,
                   sample_every=40, ckpt_every=20, ema=0.9)
    c.sparse.update(density_g=0.3, density_d=0.3, g_update_every=5, d_adjust_every=10,
                    posthoc_finetune_fraction=0.5)
    c.balance.update(br_every=2, window=10, lower=0.45, upper=0.55)
    c.eval.update(every=1000, batch_size=16, num_samples=200, cache_dir=EVAL_CACHE)
    if method == "adapt_strict":
        c.sparse.d_max = 0.5
    for k, v in overrides.items():
        target = c
        *parents, leaf = k.split(".")
        for p in parents:
            target = target[p]
        target[leaf] = v
    return c


@pytest.fixture
def make_config():
    return tiny_config
