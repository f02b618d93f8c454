"""Model registry: shapes, parameter counts, maskability, spectral norm, BN and label use.

XLA:CPU compiles slowly here (a real `init` of even the tiny model needs ~30 s, mostly RNG), so
big models are checked with `jax.eval_shape` plus numpy-filled variables and one jitted forward;
only the tiny config (what the default run trains) is initialised for real.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from adapt_jax import models
from adapt_jax.config_base import get_base_config
from adapt_jax.models import macs

TINY = dict(resolution=16, g_ch=16, d_ch=16, num_classes=10, attention=False)
CASES = {
    "sngan32": {},
    "resnet48": {},
    "biggan32": {},
    "biggan64": {},
    "sngan": TINY,
    "resnet": TINY,
    "biggan": TINY,
    "sngan_uncond_attn": dict(name="sngan", resolution=32, g_ch=16, d_ch=16, attention=True),
    "biggan_uncond_attn": dict(name="biggan", resolution=16, g_ch=8, d_ch=8, attention=True),
}
REGISTRY_CASES = ["sngan32", "resnet48", "biggan32", "biggan64", "sngan", "resnet", "biggan"]
# (G, D) number of maskable tensors, counted by hand from the architectures.
EXPECTED_MASKABLE = {
    "sngan32": (11, 11),  # G: linear + 3x3 convs + conv_out; D: 3 + 3 + 2 + 2 + linear
    "resnet48": (11, 16),  # D: 5 blocks with 1x1 shortcuts + linear
    "biggan32": (11, 10),  # D head (classifier + projection) stays dense
    "biggan64": (18, 19),  # + 4 attention convs each; D last block has a 1x1 shortcut
    "sngan": (8, 7),
    "resnet": (8, 12),  # G as sngan; D 16 -> 8 -> 4 -> 2 -> 1: 4 blocks x (2 + 1x1), dense head
    "biggan": (8, 9),
    "sngan_uncond_attn": (15, 15),  # 32x32: 3 G blocks; D 2 down + 2 flat + linear
    "biggan_uncond_attn": (12, 14),
}


def model_cfg(case: str):
    cfg = get_base_config().model
    cfg.name = case
    for k, v in CASES[case].items():
        setattr(cfg, k, v)
    return cfg


@functools.cache
def abstract(case: str):
    gan = models.create(model_cfg(case))
    g, d = jax.eval_shape(gan.init, jax.random.key(0))
    return gan, g, d


def named_leaves(tree) -> dict[str, jax.ShapeDtypeStruct]:
    flat = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {"/".join(k.key for k in path): leaf for path, leaf in flat}


def fake_variables(tree, seed: int):
    """numpy-filled stand-in for init (no XLA RNG to compile); BN variances stay positive."""
    rng = np.random.default_rng(seed)

    def fill(path, s):
        if path[-1].key == "var":
            return np.ones(s.shape, s.dtype)
        return (rng.standard_normal(s.shape) * 0.05).astype(s.dtype)

    return jax.tree_util.tree_map_with_path(fill, tree)


def test_unknown_name_lists_valid_names():
    cfg = get_base_config().model
    cfg.name = "stylegan"
    with pytest.raises(ValueError,
                       match="sngan32, resnet48, biggan32, biggan64, sngan, resnet, biggan"):
        models.create(cfg)


@pytest.mark.parametrize("family", ["sngan", "biggan"])
def test_family_rejects_unsupported_resolution(family):
    cfg = get_base_config().model
    cfg.name, cfg.resolution = family, 24
    with pytest.raises(ValueError, match="16, 32, 48, 64"):
        models.create(cfg)


@pytest.mark.parametrize("family", ["sngan", "biggan"])
@pytest.mark.parametrize("resolution", [16, 32, 48, 64])
def test_family_output_shapes_follow_resolution(family, resolution):
    cfg = get_base_config().model
    cfg.name, cfg.resolution, cfg.g_ch, cfg.d_ch, cfg.num_classes = family, resolution, 8, 8, 3
    gan = models.create(cfg)
    assert gan.resolution == resolution and gan.num_classes == 3 and gan.z_dim == cfg.z_dim
    g, d = jax.eval_shape(gan.init, jax.random.key(0))
    z = jax.ShapeDtypeStruct((5, gan.z_dim), jnp.float32)
    y = jax.ShapeDtypeStruct((5,), jnp.int32)
    x = jax.eval_shape(lambda g, z, y: gan.generator.apply(g, z, y, train=False), g, z, y)
    assert x.shape == (5, resolution, resolution, 3)
    out = jax.eval_shape(
        lambda d, x, y: gan.discriminator.apply(d, x, y, update_stats=False), d, x, y
    )
    assert out.shape == (5,) and out.dtype == jnp.float32


def test_sngan32_parameter_counts():
    gan, g, d = abstract("sngan32")
    count = lambda t: sum(int(np.prod(x.shape)) for x in jax.tree.leaves(t))
    assert count(g["params"]) == 4_276_739
    # optimized block 151,680 + down block 311,680 + 2 flat blocks x 295,168 + the final
    # Linear(128, 1, bias=False)'s 128 weights: the reference's count.
    assert count(d["params"]) == 151_680 + 311_680 + 2 * 295_168 + 128 == 1_053_824
    assert "linear/layer_instance/bias" not in named_leaves(d["params"])
    assert (gan.z_dim, gan.num_classes, gan.resolution) == (128, 0, 32)


def test_sngan32_discriminator_macs_by_hand():
    """Per-sample MACs of the reference D (bias MACs per output position, none for the final
    linear): every layer's (weight, bias) count from its shapes."""
    gan, g, d = abstract("sngan32")

    def conv(c_in, c_out, k, hw):
        return c_in * c_out * k * k * hw * hw, c_out * hw * hw

    expected = [conv(3, 128, 3, 32), conv(128, 128, 3, 32),  # pooled after: counted at 32x32
                conv(3, 128, 1, 16),  # shortcut: pool, then 1x1 conv
                conv(128, 128, 3, 16), conv(128, 128, 3, 16), conv(128, 128, 1, 16),
                *[conv(128, 128, 3, 8)] * 4, (128, 0)]
    layers = macs.gan_layer_macs(gan, g, d)[1]
    assert [(lm.weight_macs, lm.other_macs) for lm in layers] == expected
    assert layers[-1].name == "linear/layer_instance/kernel"
    assert macs.total_macs(layers) == 272_498_816


@pytest.mark.parametrize("case", list(CASES))
def test_variable_collections(case):
    gan, g, d = abstract(case)
    g_sn = case.startswith("biggan")
    assert set(g) == {"params", "batch_stats"} | ({"spectral_stats"} if g_sn else set())
    assert set(d) == {"params", "spectral_stats"}
    # every D conv/dense kernel and D embedding is spectrally normalised
    sn = {k.rsplit("/", 1)[0] for k in named_leaves(d["spectral_stats"]) if k.endswith("/u")}
    weights = {k for k, v in named_leaves(d["params"]).items() if v.ndim >= 2}
    assert sn == weights


@pytest.mark.parametrize("case", list(CASES))
def test_maskability_rule(case):
    gan, g, d = abstract(case)
    for tag, tree, fn in (("G", g, gan.g_is_maskable), ("D", d, gan.d_is_maskable)):
        leaves = named_leaves(tree["params"])
        maskable = {k for k, v in leaves.items() if fn(k, v)}
        for k, v in leaves.items():
            parts = k.split("/")
            never = (
                v.ndim < 2
                or parts[-1] in ("bias", "scale", "embedding", "gamma")
                or any(p.startswith(("bn", "shared", "head", "to_")) for p in parts)
            )
            if never:
                assert k not in maskable, f"{tag} {k} must stay dense"
            if v.ndim == 4 or (parts[-1] == "kernel" and not never):
                assert k in maskable, f"{tag} {k} is a conv/dense kernel"
        n = EXPECTED_MASKABLE[case][0 if tag == "G" else 1]
        assert len(maskable) == n, (tag, sorted(maskable))
    if gan.num_classes:
        assert not gan.d_is_maskable(
            "head/linear/layer_instance/kernel",
            named_leaves(d["params"])["head/linear/layer_instance/kernel"],
        )
    else:
        assert "linear/layer_instance/kernel" in {
            k for k, v in named_leaves(d["params"]).items() if gan.d_is_maskable(k, v)
        }


@pytest.mark.parametrize("case", REGISTRY_CASES)
def test_forward_shapes_ranges_and_label_use(case):
    """One jitted train-mode G forward and D forward at batch 2 on numpy-filled variables.

    Both batch rows share z (resp. x); only the label differs, so a conditional model must give
    different rows and an unconditional one identical rows.
    """
    gan, g_abs, d_abs = abstract(case)
    g, d = fake_variables(g_abs, 1), fake_variables(d_abs, 2)
    z = jnp.tile(jax.random.normal(jax.random.key(3), (1, gan.z_dim)), (2, 1))
    y = jnp.array([0, 1]) if gan.num_classes else None

    @jax.jit
    def run(g, d, z, y):
        x, g_upd = gan.generator.apply(
            g, z, y, train=True, mutable=["batch_stats", "spectral_stats"]
        )
        x_same = jnp.tile(x[:1], (2, 1, 1, 1))
        return x, g_upd, gan.discriminator.apply(d, x_same, y, update_stats=False)

    x, g_upd, logits = run(g, d, z, y)
    r = gan.resolution
    assert x.shape == (2, r, r, 3) and x.dtype == jnp.float32
    assert logits.shape == (2,) and logits.dtype == jnp.float32
    x, logits = np.asarray(x), np.asarray(logits)
    assert np.all(np.isfinite(x)) and np.all(np.abs(x) <= 1.0) and np.all(np.isfinite(logits))
    assert np.std(x) > 1e-4
    if gan.num_classes:
        assert np.abs(x[0] - x[1]).max() > 1e-5, "G ignores y"
        assert abs(logits[0] - logits[1]) > 1e-6, "D ignores y"
    else:
        np.testing.assert_allclose(x[0], x[1], atol=1e-6)
        np.testing.assert_allclose(logits[0], logits[1], rtol=1e-5, atol=1e-5)
    # train mode moved the BN running statistics
    moved = jax.tree.map(
        lambda a, b: bool(np.any(np.asarray(a) != np.asarray(b))),
        g_upd["batch_stats"],
        g["batch_stats"],
    )
    assert all(jax.tree.leaves(moved))


# ---- the tiny config, initialised for real ----------------------------------------------------


@pytest.fixture(scope="module")
def tiny():
    gan = models.create(model_cfg("biggan"))
    g, d = jax.jit(gan.init)(jax.random.key(0))
    return gan, g, d


def test_tiny_init_values_and_size(tiny):
    gan, g, d = tiny
    count = lambda t: sum(int(np.prod(x.shape)) for x in jax.tree.leaves(t))
    assert 60_000 < count(g["params"]) < 120_000 and 60_000 < count(d["params"]) < 120_000
    for k, v in named_leaves(g["batch_stats"]).items():
        np.testing.assert_array_equal(v, 1.0 if k.endswith("var") else 0.0)
    for stats in (g["spectral_stats"], d["spectral_stats"]):
        for k, v in named_leaves(stats).items():
            assert np.all(np.isfinite(v)) and (not k.endswith("/u") or np.abs(v).sum() > 0)
    z = jax.random.normal(jax.random.key(1), (4, gan.z_dim))
    y = jnp.arange(4)

    @jax.jit
    def run(g, d, z, y):  # eval mode / frozen SN need no mutable collection
        x = gan.generator.apply(g, z, y, train=False)
        return x, gan.discriminator.apply(d, x, y, update_stats=False)

    x, logits = run(g, d, z, y)
    assert x.shape == (4, 16, 16, 3) and float(jnp.abs(x).max()) <= 1.0
    # conditional at init too: same z (resp. same image), another label -> another output
    y2 = (y + 1) % gan.num_classes
    x2, _ = run(g, d, z, y2)
    assert np.abs(np.asarray(x2 - x)).max(axis=(1, 2, 3)).min() > 1e-4
    d_logits = jax.jit(lambda x, y: gan.discriminator.apply(d, x, y, update_stats=False))
    assert np.abs(np.asarray(d_logits(x, y2) - logits)).min() > 1e-6
    assert logits.shape == (4,)


def _sn_pairs(params: dict, stats: dict):
    """(kernel, stored sigma) for every spectrally normalised weight."""
    p, s = named_leaves(params), named_leaves(stats)
    return [
        (np.asarray(p[k[: -len("/sigma")]]), float(v)) for k, v in s.items() if k.endswith("/sigma")
    ]


def test_d_spectral_norm_converges_and_freezes(tiny):
    """Power iteration on the raw stored kernel: sigma -> top singular value, u frozen if asked.

    Orthogonal init makes every singular value 1 (any u gives sigma = 1), so the kernels are
    replaced by half-masked Gaussian ones, like the sparse kernels the trainer stores.
    """
    gan, _, d = tiny
    rng = np.random.default_rng(5)
    params = jax.tree.map(
        lambda v: (
            (rng.standard_normal(v.shape) * (rng.random(v.shape) < 0.5)).astype(v.dtype)
            if v.ndim >= 2
            else v
        ),
        d["params"],
    )
    x = jax.random.uniform(jax.random.key(2), (2, 16, 16, 3), minval=-1, maxval=1)
    y = jnp.array([3, 7])

    def step(stats, update):
        _, upd = gan.discriminator.apply(
            {"params": params, "spectral_stats": stats},
            x,
            y,
            update_stats=update,
            mutable=["spectral_stats"],
        )
        return upd["spectral_stats"]

    frozen = jax.jit(lambda s: step(s, False))(d["spectral_stats"])
    for a, b in zip(jax.tree.leaves(frozen), jax.tree.leaves(d["spectral_stats"]), strict=True):
        np.testing.assert_array_equal(a, b)

    def errors(n_steps: int) -> list[float]:
        stats = jax.jit(lambda s: jax.lax.fori_loop(0, n_steps, lambda i, s: step(s, True), s))(
            d["spectral_stats"]
        )
        pairs = _sn_pairs(params, stats)
        assert len(pairs) == 11  # 3 blocks x 3 convs + projection embedding + classifier
        tops = [np.linalg.svd(k.reshape(-1, k.shape[-1]), compute_uv=False)[0] for k, _ in pairs]
        # the normalised kernel W / sigma has top singular value top / sigma
        return [abs(t / sigma - 1.0) for t, (_, sigma) in zip(tops, pairs, strict=True)]

    assert max(errors(1)) > 1e-2  # one step from a random u is not enough: the test can fail
    assert max(errors(500)) < 1e-3  # reaches ~3e-7 here


def test_g_spectral_norm_and_bn_update_only_in_train_mode(tiny):
    gan, g, _ = tiny
    z = jax.random.normal(jax.random.key(4), (4, gan.z_dim))
    y = jnp.arange(4)
    mutable = ["batch_stats", "spectral_stats"]
    run = jax.jit(
        lambda train: gan.generator.apply(g, z, y, train=train, mutable=mutable)[1],
        static_argnums=0,
    )
    same = run(False)
    for a, b in zip(
        jax.tree.leaves(same), jax.tree.leaves({k: g[k] for k in mutable}), strict=True
    ):
        np.testing.assert_array_equal(a, b)
    moved = run(True)
    for col in mutable:
        before = named_leaves(g[col])
        changed = [k for k, v in named_leaves(moved[col]).items() if not np.allclose(v, before[k])]
        assert changed, f"{col} did not update in train mode"
