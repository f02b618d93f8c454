"""The CPU conv forms (`cpu_conv.conv_matmul_grad`: XLA's conv with per-offset GEMM weight
gradients; `cpu_conv.conv1x1_matmul`: 1x1 convs as a matmul; the resampling forms) compute the
plain conv: outputs and gradients must match it (within 1e-4), parameters must be the same, only
CPU selects them by default, and the choice is fixed when the model is created."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import tiny_config

from adapt_jax import models
from adapt_jax.config_base import ConfigError, get_base_config
from adapt_jax.models import cpu_conv, layers
from adapt_jax.models.cpu_conv import ConvForms
from adapt_jax.training.validation import validate_config

TOL = 1e-4


def _plain(x, w, pads):
    return jax.lax.conv_general_dilated(x, w, (1, 1), pads,
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"))


def _close(a, b):
    a, b = np.asarray(a), np.asarray(b)
    scale = max(1.0, float(np.max(np.abs(b))))
    np.testing.assert_allclose(a / scale, b / scale, atol=TOL, rtol=0)


@pytest.mark.parametrize("k,pads", [(3, ((1, 1), (1, 1))), (1, ((0, 0), (0, 0))),
                                    (3, ((0, 0), (0, 0))), (4, ((1, 2), (1, 2))),
                                    (3, ((2, 0), (0, 1)))])
def test_matches_plain_conv_values_and_gradients(k, pads):
    kx, kw, kg = jax.random.split(jax.random.key(0), 3)
    x = jax.random.normal(kx, (3, 7, 6, 5))
    w = 0.3 * jax.random.normal(kw, (k, k, 5, 4))
    y_ref = _plain(x, w, pads)
    y = cpu_conv.conv_matmul_grad(x, w, pads)
    _close(y, y_ref)
    g = jax.random.normal(kg, y_ref.shape)

    def loss(f):
        return lambda x, w: jnp.sum(jnp.tanh(f(x, w)) * g)

    dx, dw = jax.jit(jax.grad(loss(lambda x, w: cpu_conv.conv_matmul_grad(x, w, pads)),
                              (0, 1)))(x, w)
    dx_ref, dw_ref = jax.jit(jax.grad(loss(lambda x, w: _plain(x, w, pads)), (0, 1)))(x, w)
    _close(dx, dx_ref)
    _close(dw, dw_ref)


def test_1x1_matmul_matches_plain_conv():
    x = jax.random.normal(jax.random.key(5), (3, 4, 5, 6))
    w = jax.random.normal(jax.random.key(6), (1, 1, 6, 7))
    pads = ((0, 0), (0, 0))
    _close(cpu_conv.conv1x1_matmul(x, w), _plain(x, w, pads))

    def loss(f):
        return lambda x, w: jnp.sum(jnp.cos(f(x, w)))

    got = jax.grad(loss(cpu_conv.conv1x1_matmul), (0, 1))(x, w)
    want = jax.grad(loss(lambda x, w: _plain(x, w, pads)), (0, 1))(x, w)
    for a, b in zip(got, want, strict=True):
        _close(a, b)


def test_second_order_gradients_match():
    """Reverse-over-reverse (e.g. a gradient penalty) still differentiates the custom rule."""
    x = jax.random.normal(jax.random.key(1), (2, 5, 5, 3))
    w = 0.3 * jax.random.normal(jax.random.key(2), (3, 3, 3, 4))
    pads = ((1, 1), (1, 1))

    def penalty(conv):
        def f(w):
            gx = jax.grad(lambda x: jnp.sum(jnp.sin(conv(x, w, pads))))(x)
            return jnp.sum(gx ** 2)
        return jax.grad(f)(w)

    _close(penalty(cpu_conv.conv_matmul_grad), penalty(_plain))


def test_auto_selects_the_cpu_forms_only_on_cpu(monkeypatch):
    expected = "cpu_auto" if jax.default_backend() == "cpu" else "xla"
    assert cpu_conv.resolve_conv_impl("auto") == expected
    for backend in ("tpu", "gpu"):
        monkeypatch.setattr(jax, "default_backend", lambda backend=backend: backend)
        assert cpu_conv.resolve_conv_impl("auto") == "xla"
        assert cpu_conv.resolve_conv_impl("matmul_grad") == "matmul_grad"
    monkeypatch.setattr(jax, "default_backend", lambda: "cpu")
    assert cpu_conv.resolve_conv_impl("auto") == "cpu_auto"
    assert cpu_conv.resolve_conv_impl("xla") == "xla"
    with pytest.raises(ValueError, match="unknown conv_impl 'cudnn'"):
        cpu_conv.resolve_conv_impl("cudnn")
    with pytest.raises(ValueError, match="resolved"):
        ConvForms("auto")
    with pytest.raises(ValueError, match="unknown conv_impl"):
        layers.LayerSpec(conv_impl="cudnn")


def _primitives(f, *args) -> str:
    return str(jax.make_jaxpr(f)(*args))


@pytest.mark.parametrize("impl,shape,k,want", [
    ("xla", (2, 32, 32, 8), 3, "plain"),
    ("xla", (2, 32, 32, 8), 1, "plain"),
    ("cpu_auto", (2, 32, 32, 8), 3, "taps"),  # large image: taps
    ("cpu_auto", (2, 16, 16, 64), 3, "taps"),  # 16x16, not tiny
    ("cpu_auto", (2, 16, 16, 8), 3, "plain"),  # 16x16, tiny channels
    ("cpu_auto", (2, 8, 8, 256), 3, "plain"),  # small image
    ("cpu_auto", (2, 8, 8, 8), 1, "matmul"),  # 1x1: always a matmul
    ("matmul_grad", (2, 4, 4, 8), 3, "taps"),  # forced: every kxk conv
])
def test_which_form_each_conv_takes(impl, shape, k, want):
    x = jnp.zeros(shape)
    w = jnp.zeros((k, k, shape[-1], 64))
    dn = jax.lax.conv_dimension_numbers(x.shape, w.shape, ("NHWC", "HWIO", "NHWC"))
    jaxpr = _primitives(lambda a, b: ConvForms(impl)(
        a, b, (1, 1), "SAME", dimension_numbers=dn), x, w)
    got = ("taps" if "custom_vjp" in jaxpr else
           "plain" if "conv_general_dilated" in jaxpr else "matmul")
    assert got == want


def test_unsupported_convs_fall_back_to_plain():
    """Strided / dilated / grouped convs never take the custom path (same result either way)."""
    conv = ConvForms("matmul_grad")
    x = jax.random.normal(jax.random.key(3), (2, 8, 8, 4))
    w = jax.random.normal(jax.random.key(4), (3, 3, 2, 4))
    dn = jax.lax.conv_dimension_numbers(x.shape, w.shape, ("NHWC", "HWIO", "NHWC"))
    simple = jax.make_jaxpr(lambda a, b: conv(
        a, b, (1, 1), "SAME", dimension_numbers=dn))(x, jnp.concatenate([w, w], axis=2))
    assert "custom_vjp" in str(simple)
    for kw in (dict(window_strides=(2, 2)), dict(feature_group_count=2),
               dict(rhs_dilation=(2, 2))):
        args = dict(window_strides=(1, 1), padding="SAME", dimension_numbers=dn,
                    feature_group_count=1) | kw
        rhs = w if args["feature_group_count"] == 2 else jnp.concatenate([w, w], axis=2)
        jaxpr = jax.make_jaxpr(
            lambda a, b, args=args: conv(a, b, **args))(x, rhs)
        assert "custom_vjp" not in str(jaxpr)


def _model(name: str, **kw):
    cfg = get_base_config().model
    cfg.name = name
    for k, v in kw.items():
        setattr(cfg, k, v)
    return models.create(cfg)


@pytest.mark.parametrize("name,kw", [
    ("sngan", dict(resolution=32, g_ch=8, d_ch=8, z_dim=16, num_classes=0)),
    ("biggan", dict(resolution=16, g_ch=8, d_ch=8, z_dim=16, num_classes=10, attention=True)),
])
@pytest.mark.parametrize("impl", ["matmul_grad", "cpu_auto"])
def test_model_outputs_and_gradients_match(name, kw, impl):
    """Whole G and D (SN, BN, attention, 1x1 and 3x3 convs): same params, outputs, gradients."""
    gans = {variant: _model(name, conv_impl=variant, **kw) for variant in ("xla", impl)}
    g_ref, d_ref = jax.jit(gans["xla"].init)(jax.random.key(0))
    g_new, d_new = jax.jit(gans[impl].init)(jax.random.key(0))
    assert jax.tree.structure(g_ref) == jax.tree.structure(g_new)
    assert jax.tree.structure(d_ref) == jax.tree.structure(d_new)
    for a, b in zip(jax.tree.leaves((g_ref, d_ref)), jax.tree.leaves((g_new, d_new)),
                    strict=True):
        assert a.shape == b.shape
        np.testing.assert_array_equal(a, b)

    gan = gans["xla"]
    n = 4
    z = jax.random.normal(jax.random.key(1), (n, gan.z_dim))
    y = jnp.arange(n) % gan.num_classes if gan.num_classes else None

    def loss(gan, gp, dp):
        x, _ = gan.generator.apply({**g_ref, "params": gp}, z, y, train=True,
                                   mutable=[k for k in g_ref if k != "params"])
        logits, _ = gan.discriminator.apply({**d_ref, "params": dp}, x, y, update_stats=True,
                                            mutable=[k for k in d_ref if k != "params"])
        return jnp.mean(jax.nn.softplus(-logits)), (x, logits)

    results = {}
    for variant, g in gans.items():
        f = jax.jit(jax.value_and_grad(functools.partial(loss, g), argnums=(0, 1),
                                       has_aux=True))
        results[variant] = f(g_ref["params"], d_ref["params"])
    for a, b in zip(jax.tree.leaves(results[impl]), jax.tree.leaves(results["xla"]),
                    strict=True):
        _close(a, b)


def test_the_conv_impl_is_fixed_when_the_model_is_created(monkeypatch):
    """`models.create` resolves 'auto' for the backend of that moment into G's and D's specs;
    a later trace, whatever the backend then, uses that choice (nothing is read at trace
    time, so a compiled function cannot hold a choice other than its model's)."""
    kw = dict(resolution=16, g_ch=8, d_ch=8, z_dim=16, num_classes=0)
    created = {}
    for backend, want in (("cpu", "cpu_auto"), ("gpu", "xla")):
        monkeypatch.setattr(jax, "default_backend", lambda backend=backend: backend)
        created[want] = _model("sngan", **kw)
        assert created[want].generator.spec.conv_impl == want
        assert created[want].discriminator.spec.conv_impl == want
    g_vars = jax.eval_shape(created["xla"].init, jax.random.key(0))[0]
    z = jnp.zeros((2, 16))

    def n_convs(gan) -> int:  # conv_general_dilated equations in a G forward
        jaxpr = jax.make_jaxpr(lambda v: gan.generator.apply(
            v, z, None, train=True, mutable=[k for k in v if k != "params"]))(g_vars)
        return str(jaxpr).count("conv_general_dilated[")

    convs = {}
    for backend in ("cpu", "tpu"):
        monkeypatch.setattr(jax, "default_backend", lambda backend=backend: backend)
        convs[backend] = {impl: n_convs(gan) for impl, gan in created.items()}
    assert convs["cpu"] == convs["tpu"]
    assert convs["cpu"]["cpu_auto"] < convs["cpu"]["xla"]


def test_unknown_conv_impl_is_a_config_error():
    with pytest.raises(ConfigError, match=r"conv_impl.*'cudnn'"):
        validate_config(tiny_config(**{"model.conv_impl": "cudnn"}))


# (flag, input shape, the literal op, the full-resolution tensor the fused forms never build)
RESAMPLED = {
    "upsample_input": ((2, 5, 4, 6), lambda x, w, pads: _plain(cpu_conv.upsample(x), w, pads),
                     "f32[2,10,8,6]"),
    "pool_output": ((2, 8, 6, 6), lambda x, w, pads: cpu_conv.downsample(_plain(x, w, pads)),
                 "f32[2,8,6,5]"),
}


@pytest.mark.parametrize("impl", ["xla", "cpu_auto", "matmul_grad"])
@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize("flag", sorted(RESAMPLED))
def test_resampling_convs_match_the_literal_ops(flag, k, impl):
    """G's up-blocks (`upsample_input`: conv of the x2-upsampled input) and D's down-blocks
    (`pool_output`: 2x2 average pool of the conv): 1x1 convs run at the low resolution on every
    backend, 3x3 convs on CPU take the sub-pixel / stride-2 4x4 forms. Each must equal the
    literal op, gradients too (shapes are non-square so rows and columns can't be swapped)."""
    shape, literal_op, full_res = RESAMPLED[flag]
    kx, kw, kg = jax.random.split(jax.random.key(7), 3)
    x = jax.random.normal(kx, shape)
    w = 0.3 * jax.random.normal(kw, (k, k, 6, 5))
    pads = ((k // 2, k // 2),) * 2
    dn = jax.lax.conv_dimension_numbers((1, 8, 8, 6), w.shape, ("NHWC", "HWIO", "NHWC"))

    def fused(x, w):
        return ConvForms(impl, **{flag: True})(x, w, (1, 1), "SAME", dimension_numbers=dn)

    def literal(x, w):
        return literal_op(x, w, pads)

    y, y_ref = fused(x, w), literal(x, w)
    assert y.shape == y_ref.shape
    _close(y, y_ref)
    g = jax.random.normal(kg, y_ref.shape)

    def loss(f):
        return lambda x, w: jnp.sum(jnp.tanh(f(x, w)) * g)

    got = jax.jit(jax.grad(loss(fused), (0, 1)))(x, w)
    want = jax.jit(jax.grad(loss(literal), (0, 1)))(x, w)
    for a, b in zip(got, want, strict=True):
        _close(a, b)
    # Which form ran: only the plain 3x3 path builds the full-resolution tensor.
    jaxpr = _primitives(fused, x, w)
    assert (full_res in jaxpr) == (k == 3 and impl == "xla")
    assert ("conv_general_dilated" in jaxpr) == (impl == "xla")


def test_upsampled_conv_outside_the_fast_forms_upsamples_first():
    """bfloat16 (mixed precision) and 5x5 kernels take the plain path on the upsampled input;
    the two resampling flags exclude each other."""
    conv = ConvForms("cpu_auto", upsample_input=True)
    x = jax.random.normal(jax.random.key(8), (2, 4, 4, 3))
    for w, xx in ((jax.random.normal(jax.random.key(9), (5, 5, 3, 2)), x),
                  (jax.random.normal(jax.random.key(9), (3, 3, 3, 2)).astype(jnp.bfloat16),
                   x.astype(jnp.bfloat16))):
        k = w.shape[0]
        dn = jax.lax.conv_dimension_numbers((2, 8, 8, 3), w.shape, ("NHWC", "HWIO", "NHWC"))
        y = conv(xx, w, (1, 1), "SAME", dimension_numbers=dn)
        ref = _plain(cpu_conv.upsample(xx), w, ((k // 2, k // 2),) * 2)
        np.testing.assert_array_equal(np.asarray(y, np.float32), np.asarray(ref, np.float32))
    with pytest.raises(ValueError, match="exclude each other"):
        ConvForms("cpu_auto", upsample_input=True, pool_output=True)
