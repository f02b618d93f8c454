"""model.dtype='bfloat16': mixed-precision compute with float32 state, for GPU/TPU users.

The CPU cannot show a speed-up; these tests pin down the semantics: the same parameters give the
float32 outputs within bfloat16 rounding, every stored variable stays float32, and training keeps
masks exact and losses finite.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import tiny_config
from test_train import _zero_where_off

from adapt_jax import models, sparse, training


def _pair():
    c = tiny_config()
    f32 = models.create(c.model)
    c.model.dtype = "bfloat16"
    return f32, models.create(c.model)


def test_unknown_dtype_is_rejected():
    c = tiny_config()
    c.model.dtype = "float16"
    with pytest.raises(ValueError, match="bfloat16"):
        models.create(c.model)


def test_bf16_outputs_match_float32_within_rounding_and_state_stays_float32():
    f32, bf16 = _pair()
    g_vars, d_vars = jax.jit(bf16.init)(jax.random.key(0))
    for leaf in jax.tree.leaves((g_vars, d_vars)):
        assert leaf.dtype == jnp.float32
    # Same variables in both models: identical trees, so the outputs are comparable.
    g32, d32 = jax.jit(f32.init)(jax.random.key(0))
    assert jax.tree.structure(g_vars) == jax.tree.structure(g32)
    z = jax.random.normal(jax.random.key(1), (8, f32.z_dim))
    y = jnp.arange(8) % f32.num_classes
    images = {}
    logits = {}
    for name, gan in (("f32", f32), ("bf16", bf16)):
        images[name] = gan.generator.apply(g_vars, z, y, train=False)
        logits[name] = gan.discriminator.apply(d_vars, images["f32"], y, update_stats=False)
        assert images[name].dtype == jnp.float32 and logits[name].dtype == jnp.float32
    img_err = np.max(np.abs(np.asarray(images["bf16"]) - np.asarray(images["f32"])))
    assert 0 < img_err < 0.1  # bf16 has 8 mantissa bits: not identical, but close
    scale = np.max(np.abs(np.asarray(logits["f32"])))
    log_err = np.max(np.abs(np.asarray(logits["bf16"]) - np.asarray(logits["f32"])))
    assert 0 < log_err < 0.05 * scale + 1e-3


def test_bf16_training_keeps_masks_exact_and_losses_finite(tmp_path):
    c = tiny_config("adapt_relax", **{"model.dtype": "bfloat16", "train.num_iters": 12})
    tr = training.Trainer(c, str(tmp_path))
    g_count = int(sparse.count_active(tr.state.g.masks))
    while tr.t < 12:
        tr.iteration()
        s = tr.state
        assert int(s.nonfinite_at) == 0, f"non-finite loss or gradient at t={tr.t}"
        assert _zero_where_off(s.g.params, s.g.masks) and _zero_where_off(s.d.params, s.d.masks)
    assert all(p.dtype == jnp.float32 for p in jax.tree.leaves((s.g.params, s.d.params)))
    assert int(sparse.count_active(s.g.masks)) == g_count
