"""The jitted steps: hand computations on linear G and D, BR of an unchanged G, and the
per-device batch of the compiled steps on simulated devices."""

import json
import os
import subprocess
import sys

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from conftest import tiny_config

from adapt_jax import sparse, training
from adapt_jax.gan.state import NetState, TrainState, iteration_key
from adapt_jax.gan.steps import GanSteps, StepConfig

Z, H = 3, 2  # latent size; images are H x H x 3


class LinearG(nn.Module):
    """images = tanh-free linear map of z, so every quantity has a closed form."""

    @nn.compact
    def __call__(self, z, y=None, *, train: bool):
        return nn.Dense(H * H * 3, use_bias=False)(z).reshape(-1, H, H, 3)


class LinearD(nn.Module):
    @nn.compact
    def __call__(self, x, y=None, *, update_stats: bool):
        return nn.Dense(1, use_bias=False)(x.reshape(x.shape[0], -1))[:, 0]


def _setup(lr=0.1):
    g_mod, d_mod = LinearG(), LinearD()
    kg, kd = jax.random.split(jax.random.PRNGKey(0))
    g_params = g_mod.init(kg, jnp.zeros((1, Z)), train=True)["params"]
    d_params = d_mod.init(kd, jnp.zeros((1, H, H, 3)), update_stats=True)["params"]
    tx = sparse.keep_sparse(optax.sgd(lr))
    ones = lambda p: jax.tree.map(lambda x: jnp.ones(x.shape, bool), p)  # noqa: E731
    g = NetState(g_params, ones(g_params), tx.init(g_params), {})
    d = NetState(d_params, ones(d_params), tx.init(d_params), {})
    state = TrainState(g=g, d=d, ema_params=g_params, step=jnp.int32(0),
                       rng=jax.random.PRNGKey(1))
    cfg = StepConfig(z_dim=Z, num_classes=0, batch_g=4, loss="hinge", diffaug="", ema=0.5,
                     g_growth="rigl", g_scope="global", d_growth="rigl",
                     reset_moments_on_grow=False)
    return GanSteps(g_mod, d_mod, tx, tx, cfg), state


def test_br_terms_and_g_update_match_hand_computation():
    lr = 0.1
    steps, state = _setup(lr)
    reals = jax.random.normal(jax.random.PRNGKey(5), (6, H, H, 3))
    sub = jnp.int32(1)
    new_state, m = jax.jit(steps.g_step)(state, reals, None, sub, jnp.bool_(True),
                                         jnp.bool_(False), jnp.float32(0.0))
    # Independent numpy computation with the same z.
    kz = jax.random.split(iteration_key(state, sub), 3)[0]
    z = np.asarray(jax.random.normal(jax.random.split(kz)[0], (4, Z)))
    W = np.asarray(state.g.params["Dense_0"]["kernel"])  # (Z, 12)
    v = np.asarray(state.d.params["Dense_0"]["kernel"])[:, 0]  # (12,)
    d_pre = (z @ W) @ v
    # g_loss = -mean(D(G(z))) → dL/dW = -mean_i outer(z_i, v)
    grad_W = -np.outer(z.mean(0), v)
    W_post = W - lr * grad_W
    d_post = (z @ W_post) @ v
    d_real = np.asarray(reals).reshape(6, -1) @ v
    np.testing.assert_allclose(new_state.g.params["Dense_0"]["kernel"], W_post, rtol=1e-5,
                               atol=1e-6)
    fake_post, fake_pre, real, real_sign = np.asarray(m["br_terms"])
    np.testing.assert_allclose([fake_post, fake_pre, real, real_sign],
                               [d_post.mean(), d_pre.mean(), d_real.mean(),
                                np.sign(d_real).mean()], rtol=1e-5, atol=1e-6)
    br = (fake_post - fake_pre) / (real - fake_pre)
    expected = (d_post.mean() - d_pre.mean()) / (d_real.mean() - d_pre.mean())
    np.testing.assert_allclose(br, expected, rtol=1e-4)
    # EMA with decay 0.5 of the (unchanged-mask) new params.
    np.testing.assert_allclose(new_state.ema_params["Dense_0"]["kernel"], 0.5 * W + 0.5 * W_post,
                               rtol=1e-5, atol=1e-6)
    assert int(new_state.step) == 1


def test_br_not_measured_gives_zeros_and_same_update():
    steps, state = _setup()
    reals = jnp.ones((6, H, H, 3))
    args = (reals, None, jnp.int32(1))
    s1, m1 = jax.jit(steps.g_step)(state, *args, jnp.bool_(True), jnp.bool_(False), 0.0)
    s2, m2 = jax.jit(steps.g_step)(state, *args, jnp.bool_(False), jnp.bool_(False), 0.0)
    assert np.all(np.asarray(m2["br_terms"]) == 0)
    np.testing.assert_array_equal(s1.g.params["Dense_0"]["kernel"],
                                  s2.g.params["Dense_0"]["kernel"])


def test_d_step_hinge_gradient_by_hand():
    lr = 0.1
    steps, state = _setup(lr)
    reals = jax.random.normal(jax.random.PRNGKey(2), (4, H, H, 3))
    new_state, m = jax.jit(steps.d_step)(state, reals, None, jnp.int32(0))
    kf = jax.random.split(iteration_key(state, 0))[0]
    z = np.asarray(jax.random.normal(jax.random.split(kf)[0], (4, Z)))
    W = np.asarray(state.g.params["Dense_0"]["kernel"])
    v = np.asarray(state.d.params["Dense_0"]["kernel"])[:, 0]
    xr, xf = np.asarray(reals).reshape(4, -1), z @ W
    r, f = xr @ v, xf @ v
    loss = np.maximum(0, 1 - r).mean() + np.maximum(0, 1 + f).mean()
    grad = (-(xr * (r < 1)[:, None]).mean(0) + (xf * (f > -1)[:, None]).mean(0))
    np.testing.assert_allclose(m["d_loss"], loss, rtol=1e-5)
    np.testing.assert_allclose(new_state.d.params["Dense_0"]["kernel"][:, 0], v - lr * grad,
                               rtol=1e-5, atol=1e-6)


def test_br_of_an_unchanged_generator_is_exactly_zero(tmp_path):
    """lr_g = 0 leaves G as it was, so D(G(z)) before and after the update must agree to the
    bit: BR's numerator is a small difference that rounding alone must not move."""
    tr = training.Trainer(tiny_config("adapt_relax", **{"train.lr_g": 0.0}), str(tmp_path))
    reals, labels = tr.next_batch()
    _, m = tr.components.steps.g_step(tr.state, reals, labels, jnp.int32(1), jnp.bool_(True),
                              jnp.bool_(False), jnp.float32(0.0))
    fake_post, fake_pre, real, _ = np.asarray(m["br_terms"])
    assert fake_post - fake_pre == 0.0
    assert real != fake_pre  # a real measurement, not two zeros


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HLO_SCRIPT = """
import json, sys, jax, jax.numpy as jnp
sys.path.insert(0, 'tests')
from conftest import tiny_config
from adapt_jax.tools import hlo
from adapt_jax import training
assert jax.device_count() == 4, jax.devices()
tr = training.Trainer(tiny_config('adapt_relax', **{'train.batch_g': 32}), sys.argv[1])
x, y = tr.next_batch()
i, yes = jnp.int32(1), jnp.bool_(True)
steps = tr.components.steps
lowered = {'d_step': steps.d_step.lower(tr.state, x, y, i),
           'g_step': steps.g_step.lower(tr.state, x, y, i, yes, yes, jnp.float32(0.1))}
print(json.dumps({k: hlo.batch_sizes(v.compile().as_text()) for k, v in lowered.items()}))
"""


def test_every_convolution_runs_on_its_share_of_the_batch(tmp_path):
    """4 simulated devices, batch_d 16 and batch_g 32: every convolution of the compiled D and
    G steps (G's forward and backward, the BR forwards, D on reals and fakes) sees a quarter of
    its batch; a full-batch convolution means a step runs replicated instead of in parallel."""
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4")
    proc = subprocess.run([sys.executable, "-c", HLO_SCRIPT, str(tmp_path)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    sizes = json.loads(proc.stdout.strip().splitlines()[-1])
    # D step: G on 16/4 fakes, D on 16/4 reals + 16/4 fakes. G step: G and D on 32/4 fakes,
    # D on 16/4 reals (BR). 16 or 32 rows would be a replicated convolution.
    assert set(sizes["d_step"]) == {"4", "8"}, sizes
    assert set(sizes["g_step"]) == {"4", "8"}, sizes
