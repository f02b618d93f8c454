"""Building blocks shared by every GAN in `adapt_jax.models` (NHWC, linen).

Every conv / dense / embedding goes through `conv`, `dense` or `embed`, which wrap the flax layer
either in `nn.SpectralNorm` or in `Plain`. Both expose the layer as `<name>/layer_instance/...`, so
parameter paths look the same with and without spectral norm and the maskability rule
(`adapt_jax.models.nets.is_maskable`) is a plain name rule. Spectral norm normalises the raw
stored kernel on the fly (linen's functional SN), so a kernel masked by the trainer is normalised
as the sparse matrix it is.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

Array = jax.Array
Initializer = Callable[..., Array]

SN_COLLECTION = "spectral_stats"
INITS = ("torch", "kaiming", "normal02", "ortho")
NORMS = ("bn", "class", "shared")
# Flax BN momentum is 1 - PyTorch momentum; the references use PyTorch's default 0.1.
BN_MOMENTUM = 0.9


@dataclasses.dataclass(frozen=True)
class LayerSpec:
    """How a network builds its layers: spectral norm on/off, the weight-init scheme, and the
    compute dtype (float32, or bfloat16 for mixed precision on GPU/TPU: parameters, masks,
    optimizer state, BN statistics and spectral-norm vectors stay float32; activations and the
    matmul/conv inputs are cast to `dtype`).

    init: 'torch' (PyTorch default: kaiming-uniform a=sqrt(5), uniform bias; SNGAN reference),
    'kaiming' (kaiming-normal fan_in, zero bias; reference resnet.48), 'normal02' (N(0, 0.02),
    zero bias; reference biggan.32), 'ortho' (orthogonal, zero bias; StudioGAN BigGAN).
    """

    sn: bool = False
    init: str = "torch"
    sn_eps: float = 1e-12
    dtype: Any = jnp.float32

    def __post_init__(self) -> None:
        if self.init not in INITS:
            raise ValueError(f"unknown init {self.init!r}; valid: {', '.join(INITS)}")

    def kernel_init(self) -> Initializer:
        return {
            "torch": nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform"),
            "kaiming": nn.initializers.variance_scaling(2.0, "fan_in", "normal"),
            "normal02": nn.initializers.normal(0.02),
            "ortho": nn.initializers.orthogonal(),
        }[self.init]

    def bias_init(self, fan_in: int) -> Initializer:
        if self.init != "torch":
            return nn.initializers.zeros
        bound = 1.0 / math.sqrt(fan_in)

        def init(key: Array, shape: tuple[int, ...], dtype=jnp.float32) -> Array:
            return jax.random.uniform(key, shape, dtype, -bound, bound)

        return init

    def embed_init(self) -> Initializer:
        # torch/kaiming nets only use embeddings in our conditional extensions: xavier-uniform
        # (Miyato's projection-D choice) keeps CBN gains 1+g near 1 while still label-dependent.
        return {
            "torch": nn.initializers.xavier_uniform(),
            "kaiming": nn.initializers.xavier_uniform(),
            "normal02": nn.initializers.normal(0.02),
            "ortho": nn.initializers.orthogonal(),
        }[self.init]


class Plain(nn.Module):
    """Stand-in for `nn.SpectralNorm` without normalisation: same call signature, same paths."""

    layer_instance: nn.Module

    def __call__(self, *args, update_stats: bool = False, **kwargs):
        del update_stats
        return self.layer_instance(*args, **kwargs)


def _wrapped(layer: nn.Module, spec: LayerSpec, sn: bool, name: str) -> nn.Module:
    if sn:
        return nn.SpectralNorm(layer, epsilon=spec.sn_eps, collection_name=SN_COLLECTION, name=name)
    return Plain(layer, name=name)


# -- convolution implementation ---------------------------------------------------------------
# XLA:CPU computes a conv's weight gradient as a conv whose "kernel" is the whole output-gradient
# image; its cost grows with the image: ~1.5x the forward at 4x4, ~3x at 16x16, 6-9x at 32x32,
# and 65x for a 1x1 conv at 32x32 (`benchmarks/conv_gap.py --config full`). That made full CPU G
# steps several times slower than PyTorch. On CPU (`conv_impl() == 'cpu_auto'`):
# - 1x1 convs are a matmul (einsum): forward, input and weight gradients are all GEMMs;
# - kxk convs whose weight gradient XLA:CPU handles badly use `conv_matmul_grad`: XLA's forward
#   and input gradient, the weight gradient as one GEMM per kernel offset,
#   dW[i, j] = pad(x)[:, i:i+H, j:j+W, :]^T @ dy (`_taps_pay_off` says when);
# - other convs (small images or few channels, where XLA's own gradient is as fast) are plain;
# - convs of an upsampled input (G) or with a pooled output (D) take the resampling forms below
#   (`conv(..., upsample_input=True / pool_output=True)`): 16 instead of 36 products per
#   low-resolution pixel (`benchmarks/resample_convs.py`).
# Same math, float32 sums in another order (tests/test_conv_impl.py: within 1e-4). TPU/GPU keep
# the plain conv (and only the exact 1x1 reorderings): the choice is made at trace time from
# jax.default_backend().
CONV_IMPLS = ("auto", "xla", "cpu_auto", "matmul_grad")
CONV_IMPL_ENV = "ADAPT_JAX_CONV_IMPL"
_conv_impl_override: str | None = None


def set_conv_impl(impl: str | None) -> None:
    """Force a conv implementation (None: the environment variable, else 'auto'):
    'xla' plain everywhere; 'cpu_auto' the CPU rules above; 'matmul_grad' the matmul forms for
    every eligible conv regardless of size (tests). Read at trace time: it affects functions
    traced afterwards."""
    if impl is not None and impl not in CONV_IMPLS:
        raise ValueError(f"unknown conv impl {impl!r}; valid: {', '.join(CONV_IMPLS)}")
    global _conv_impl_override
    _conv_impl_override = impl


def conv_impl() -> str:
    """The resolved implementation: 'cpu_auto' on CPU, 'xla' elsewhere, unless overridden by
    `set_conv_impl` or the ADAPT_JAX_CONV_IMPL environment variable."""
    impl = _conv_impl_override or os.environ.get(CONV_IMPL_ENV, "auto")
    if impl not in CONV_IMPLS:
        raise ValueError(f"{CONV_IMPL_ENV}={impl!r}; valid: {', '.join(CONV_IMPLS)}")
    if impl == "auto":
        return "cpu_auto" if jax.default_backend() == "cpu" else "xla"
    return impl


def _taps_pay_off(out_hw: tuple[int, int], c_in: int, c_out: int) -> bool:
    """Measured on XLA:CPU (conv_gap.json): the per-offset GEMMs beat XLA's weight-gradient conv
    from 32x32 images on, and from 16x16 once the layer is not tiny (c_in * c_out >= 64^2)."""
    pixels = out_hw[0] * out_hw[1]
    return pixels >= 32 * 32 or (pixels >= 16 * 16 and c_in * c_out >= 64 * 64)


def _xla_conv(x: Array, w: Array, padding, precision) -> Array:
    return jax.lax.conv_general_dilated(x, w, (1, 1), padding, precision=precision,
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"))


def conv1x1_matmul(x: Array, w: Array, precision=None) -> Array:
    """Unpadded stride-1 1x1 NHWC conv as a matmul (all three products are GEMMs)."""
    return jnp.einsum("bhwc,cd->bhwd", x, w[0, 0], precision=precision)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def conv_matmul_grad(x: Array, w: Array, padding: tuple, precision=None) -> Array:
    """Stride-1 NHWC/HWIO conv with explicit ((lo, hi), (lo, hi)) padding whose weight
    gradient is computed as per-offset GEMMs (see above); forward and dx are XLA's."""
    return _xla_conv(x, w, padding, precision)


def _conv_mg_fwd(x, w, padding, precision):
    return _xla_conv(x, w, padding, precision), (x, w)


def _conv_mg_bwd(padding, precision, res, dy):
    x, w = res
    _, vjp_x = jax.vjp(lambda x_: _xla_conv(x_, w, padding, precision), x)
    (dx,) = vjp_x(dy)
    kh, kw = w.shape[:2]
    ho, wo = dy.shape[1:3]
    xp = jnp.pad(x, ((0, 0), *padding, (0, 0)))
    dy2 = dy.reshape(-1, dy.shape[-1])
    taps = [
        jnp.dot(xp[:, i:i + ho, j:j + wo, :].reshape(-1, x.shape[-1]).T, dy2,
                precision=precision, preferred_element_type=jnp.float32)
        for i in range(kh) for j in range(kw)
    ]
    dw = jnp.stack(taps).reshape(w.shape).astype(w.dtype)
    return dx, dw


conv_matmul_grad.defvjp(_conv_mg_fwd, _conv_mg_bwd)

def _gemm_of_views(views: list[Array], k: Array, precision) -> Array:
    """sum_t views[t] @ k[t] as one GEMM: the (b, h, w, c) views concatenated on channels
    against the (T, c, o) taps; autodiff turns every product into a GEMM as well."""
    b, h, w, c = views[0].shape
    patches = jnp.concatenate(views, axis=-1).reshape(b * h * w, len(views) * c)
    y = jnp.dot(patches, k.reshape(len(views) * c, -1), precision=precision)
    return y.reshape(b, h, w, -1)


# Nearest x2 upsampling followed by a 3x3 'SAME' conv (every generator up-block) gives each of
# the four output phases (row parity a, column parity b) a 2x2 conv of the *low-resolution*
# input whose taps are sums of the 3x3 kernel's rows/columns: rows (-1, 0) take (w0, w1 + w2)
# for a = 0, rows (0, +1) take (w0 + w1, w2) for a = 1, likewise for columns. 4 phases x 4 taps
# = 16 products per low-res pixel instead of 4 x 9 = 36 on the upsampled image: 2.25x fewer
# MACs in forward, input and weight gradients, and the upsampled activation never exists.
_PHASE_TAPS = (((1, 0, 0), (0, 1, 1)), ((1, 1, 0), (0, 0, 1)))  # [parity][tap][kernel row]


def upconv3x3_subpixel(x: Array, w: Array, precision=None) -> Array:
    """conv3x3_same(upsample_nearest_x2(x), w) for NHWC x, HWIO w, computed on x's resolution:
    per phase, one GEMM of the 4 shifted low-res views with the phase's 2x2 kernel."""
    b, h, wd, _ = x.shape
    taps = jnp.asarray(_PHASE_TAPS, w.dtype)
    xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    rows = []
    for a in range(2):
        cols = []
        for bb in range(2):
            k = jnp.einsum("pi,qj,ijco->pqco", taps[a], taps[bb], w, precision=precision)
            views = [xp[:, a + p:a + p + h, bb + q:bb + q + wd, :]
                     for p in range(2) for q in range(2)]
            cols.append(_gemm_of_views(views, k.reshape(4, *w.shape[2:]), precision))
        rows.append(jnp.stack(cols, axis=3))  # (b, h, w, 2[col parity], o)
    y = jnp.stack(rows, axis=2)  # (b, h, 2[row parity], w, 2, o)
    return y.reshape(b, 2 * h, 2 * wd, -1)


# A 3x3 'SAME' conv followed by 2x2 average pooling (every discriminator down-block) is one
# stride-2 4x4 conv whose kernel is the 3x3 kernel box-filtered: K[u, v] = 1/4 * sum of
# w[u - a, v - b] over a, b in {0, 1}. 16 products per pooled pixel instead of 4 x 9 = 36, and
# the full-resolution conv output never exists.
def conv3x3_avgpool(x: Array, w: Array, precision=None) -> Array:
    """avg_pool_2x2(conv3x3_same(x, w)) for NHWC x with even height and width, HWIO w."""
    _, h, wd, _ = x.shape
    k = sum(jnp.pad(w, ((a, 1 - a), (b, 1 - b), (0, 0), (0, 0)))
            for a in range(2) for b in range(2)) * 0.25
    xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    ho, wo = h // 2, wd // 2
    views = [xp[:, u:u + 2 * ho:2, v:v + 2 * wo:2, :] for u in range(4) for v in range(4)]
    return _gemm_of_views(views, k.reshape(16, *w.shape[2:]), precision)


_NHWC = ((0, 3, 1, 2), (3, 2, 0, 1), (0, 3, 1, 2))


def _explicit_pads(padding, kernel_hw) -> tuple[tuple[int, int], ...] | None:
    if isinstance(padding, str):
        if padding.upper() == "SAME":  # stride 1: lax's SAME split
            return tuple(((k - 1) // 2, k - 1 - (k - 1) // 2) for k in kernel_hw)
        return ((0, 0), (0, 0)) if padding.upper() == "VALID" else None
    pads = tuple((int(lo), int(hi)) for lo, hi in padding)
    return None if any(p < 0 for pair in pads for p in pair) else pads


def _is_simple_nhwc(lhs, window_strides, lhs_dilation, rhs_dilation, dimension_numbers,
                    feature_group_count, kwargs) -> bool:
    """A stride-1, undilated, ungrouped NHWC/HWIO conv: the only kind the custom forms handle."""
    ones = (1,) * (lhs.ndim - 2)
    return (
        lhs.ndim == 4 and not kwargs and feature_group_count == 1
        and tuple(window_strides) == ones
        and tuple(lhs_dilation or ones) == ones and tuple(rhs_dilation or ones) == ones
        and dimension_numbers is not None
        and tuple(map(tuple, dimension_numbers)) == _NHWC
    )


def _conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=None,
                          rhs_dilation=None, dimension_numbers=None, feature_group_count=1,
                          precision=None, upsample_lhs=False, pool_out=False, **kwargs):
    """Drop-in for lax.conv_general_dilated inside nn.Conv (same params, names, shapes): the
    CPU forms above for the stride-1, undilated, ungrouped NHWC convs this package builds when
    `conv_impl()` asks for them; lax.conv_general_dilated otherwise.

    upsample_lhs: `lhs` is the low-resolution input of conv(upsample(lhs)). A 1x1 conv then
    runs before the upsampling (the same products, 4x fewer, on every backend); on CPU a 3x3
    conv takes the sub-pixel form; anything else upsamples first.
    pool_out: return downsample(conv(lhs)). A 1x1 conv then runs after the pooling (4x fewer
    products, every backend); on CPU a 3x3 conv takes the stride-2 4x4 form; anything else
    convolves, then pools."""
    if upsample_lhs and pool_out:
        raise ValueError("upsample_lhs and pool_out exclude each other")
    simple = _is_simple_nhwc(lhs, window_strides, lhs_dilation, rhs_dilation,
                             dimension_numbers, feature_group_count, kwargs)
    pads = _explicit_pads(padding, rhs.shape[:2]) if simple else None
    impl = conv_impl()
    if upsample_lhs or pool_out:
        def conv_here(x: Array) -> Array:
            return _conv_general_dilated(x, rhs, window_strides, padding,
                                         dimension_numbers=dimension_numbers,
                                         precision=precision)

        is_1x1 = rhs.shape[:2] == (1, 1) and pads == ((0, 0), (0, 0))
        fast_3x3 = (rhs.shape[:2] == (3, 3) and pads == ((1, 1), (1, 1))
                    and impl != "xla" and lhs.dtype == jnp.float32)
        if upsample_lhs:
            if is_1x1:
                return upsample(conv_here(lhs))
            return upconv3x3_subpixel(lhs, rhs, precision) if fast_3x3 else conv_here(
                upsample(lhs))
        if is_1x1:
            return conv_here(downsample(lhs))
        if fast_3x3 and lhs.shape[1] % 2 == 0 and lhs.shape[2] % 2 == 0:
            return conv3x3_avgpool(lhs, rhs, precision)
        return downsample(conv_here(lhs))

    def plain():
        return jax.lax.conv_general_dilated(
            lhs, rhs, window_strides, padding, lhs_dilation=lhs_dilation,
            rhs_dilation=rhs_dilation, dimension_numbers=dimension_numbers,
            feature_group_count=feature_group_count, precision=precision, **kwargs)

    # The CPU forms are float32-only; mixed precision is a GPU/TPU feature.
    if pads is None or impl == "xla" or lhs.dtype != jnp.float32:
        return plain()
    if rhs.shape[:2] == (1, 1) and pads == ((0, 0), (0, 0)):
        return conv1x1_matmul(lhs, rhs, precision)
    out_hw = tuple(lhs.shape[1 + i] + sum(pads[i]) - rhs.shape[i] + 1 for i in range(2))
    if impl == "matmul_grad" or _taps_pay_off(out_hw, rhs.shape[2], rhs.shape[3]):
        return conv_matmul_grad(lhs, rhs, pads, precision)
    return plain()


def conv(
    x: Array,
    features: int,
    spec: LayerSpec,
    *,
    name: str,
    kernel_size: int = 3,
    use_bias: bool = True,
    update_stats: bool = False,
    upsample_input: bool = False,
    pool_output: bool = False,
) -> Array:
    """kxk 'SAME' conv, stride 1; must be called inside a compact method.

    upsample_input: compute conv(upsample(x)) (nearest x2); pool_output: compute
    downsample(conv(x)) (2x2 average). Both use a cheaper exact form where one exists
    (`_conv_general_dilated`); parameters, their names and the counted MACs
    (`adapt_jax.flops`) are those of the conv at the larger resolution."""
    fan_in = kernel_size * kernel_size * x.shape[-1]
    conv_fn = _conv_general_dilated
    if upsample_input or pool_output:
        conv_fn = functools.partial(_conv_general_dilated, upsample_lhs=upsample_input,
                                    pool_out=pool_output)
    layer = nn.Conv(
        features,
        (kernel_size, kernel_size),
        padding="SAME",
        use_bias=use_bias,
        kernel_init=spec.kernel_init(),
        bias_init=spec.bias_init(fan_in),
        conv_general_dilated=conv_fn,
        dtype=spec.dtype,
        parent=None,
    )
    return _wrapped(layer, spec, spec.sn, name)(x, update_stats=update_stats)


def dense(
    x: Array,
    features: int,
    spec: LayerSpec,
    *,
    name: str,
    use_bias: bool = True,
    update_stats: bool = False,
) -> Array:
    layer = nn.Dense(
        features,
        use_bias=use_bias,
        kernel_init=spec.kernel_init(),
        bias_init=spec.bias_init(x.shape[-1]),
        dtype=spec.dtype,
        parent=None,
    )
    return _wrapped(layer, spec, spec.sn, name)(x, update_stats=update_stats)


def embed(
    y: Array,
    num_embeddings: int,
    features: int,
    spec: LayerSpec,
    *,
    name: str,
    sn: bool | None = None,
    update_stats: bool = False,
) -> Array:
    """Class embedding; `sn` overrides spec.sn (CBN tables are never spectrally normalised)."""
    layer = nn.Embed(num_embeddings, features, embedding_init=spec.embed_init(),
                     dtype=spec.dtype, parent=None)
    use_sn = spec.sn if sn is None else sn
    return _wrapped(layer, spec, use_sn, name)(y, update_stats=update_stats)


def upsample(x: Array) -> Array:
    """Nearest-neighbour x2."""
    return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)


def downsample(x: Array) -> Array:
    """2x2 average pool, stride 2 (floors odd sizes like PyTorch's avg_pool2d)."""
    return nn.avg_pool(x, (2, 2), strides=(2, 2))


class CondBatchNorm(nn.Module):
    """Generator normalisation.

    kind 'bn': BatchNorm with its own scale/bias. 'class': affine-free BN then x*(1+g)+b with g, b
    from per-layer class embeddings (reference biggan.32). 'shared': g, b from (SN) linears on a
    conditioning vector, e.g. [shared class embedding, z chunk] (StudioGAN BigGAN).
    """

    kind: str
    spec: LayerSpec
    num_classes: int = 0
    eps: float = 1e-5

    @nn.compact
    def __call__(self, x: Array, cond: Array | None, *, train: bool) -> Array:
        if self.kind not in NORMS:
            raise ValueError(f"unknown norm {self.kind!r}; valid: {', '.join(NORMS)}")
        affine = self.kind == "bn"
        x = nn.BatchNorm(
            use_running_average=not train,
            momentum=BN_MOMENTUM,
            epsilon=self.eps,
            use_scale=affine,
            use_bias=affine,
            dtype=self.spec.dtype,
            name="bn",
        )(x)
        if affine:
            return x
        c = x.shape[-1]
        if self.kind == "class":
            gain = embed(cond, self.num_classes, c, self.spec, name="to_gain", sn=False)
            bias = embed(cond, self.num_classes, c, self.spec, name="to_bias", sn=False)
        else:
            kw = dict(use_bias=False, update_stats=train)
            gain = dense(cond, c, self.spec, name="to_gain", **kw)
            bias = dense(cond, c, self.spec, name="to_bias", **kw)
        return x * (1.0 + gain[:, None, None, :]) + bias[:, None, None, :]


class SelfAttention(nn.Module):
    """SAGAN/StudioGAN self-attention: 1x1 theta/phi/g convs, 2x2 max-pooled keys, zero-init gain.

    The gain `gamma` is a parameter of its own (never masked, unlike the reference's `sigma`).
    """

    spec: LayerSpec

    @nn.compact
    def __call__(self, x: Array, *, update_stats: bool) -> Array:
        b, h, w, c = x.shape
        kw = dict(kernel_size=1, use_bias=False, update_stats=update_stats)

        def pool(t: Array) -> Array:
            return nn.max_pool(t, (2, 2), strides=(2, 2))

        theta = conv(x, c // 8, self.spec, name="theta", **kw).reshape(b, h * w, c // 8)
        phi = pool(conv(x, c // 8, self.spec, name="phi", **kw)).reshape(b, -1, c // 8)
        g = pool(conv(x, c // 2, self.spec, name="g", **kw)).reshape(b, -1, c // 2)
        attn = jax.nn.softmax(jnp.einsum("bqc,bkc->bqk", theta, phi), axis=-1)
        o = jnp.einsum("bqk,bkc->bqc", attn, g).reshape(b, h, w, c // 2)
        o = conv(o, c, self.spec, name="out", **kw)
        gamma = self.param("gamma", nn.initializers.zeros, (1,))
        return x + gamma * o


class GBlock(nn.Module):
    """Generator up-block: norm-ReLU-up-conv3-norm-ReLU-conv3, shortcut up-conv1."""

    features: int
    spec: LayerSpec
    norm: str = "bn"
    num_classes: int = 0
    bn_eps: float = 1e-5

    @nn.compact
    def __call__(self, x: Array, cond: Array | None, *, train: bool) -> Array:
        def norm(t: Array, name: str) -> Array:
            cbn = CondBatchNorm(self.norm, self.spec, self.num_classes, self.bn_eps, name=name)
            return cbn(t, cond, train=train)

        up = dict(update_stats=train, upsample_input=True)
        h = conv(nn.relu(norm(x, "bn1")), self.features, self.spec, name="conv1", **up)
        h = nn.relu(norm(h, "bn2"))
        h = conv(h, self.features, self.spec, name="conv2", update_stats=train)
        sc = conv(x, self.features, self.spec, name="conv_sc", kernel_size=1, **up)
        return h + sc


class DBlock(nn.Module):
    """Discriminator block: ReLU-conv3-ReLU-conv3[-pool], 1x1-conv shortcut when shape changes.

    optimized: SNGAN's first block (no pre-activation; shortcut pools before its 1x1 conv).
    hidden_in: first conv keeps the input width (SNGAN/Miyato) instead of the output's (BigGAN).
    """

    features: int
    spec: LayerSpec
    down: bool = True
    optimized: bool = False
    hidden_in: bool = False

    @nn.compact
    def __call__(self, x: Array, *, update_stats: bool) -> Array:
        if self.optimized and not self.down:
            raise ValueError("the optimized first D block always downsamples")
        in_ch = x.shape[-1]
        hidden = in_ch if (self.hidden_in and not self.optimized) else self.features
        h = x if self.optimized else nn.relu(x)
        h = conv(h, hidden, self.spec, name="conv1", update_stats=update_stats)
        h = conv(nn.relu(h), self.features, self.spec, name="conv2", update_stats=update_stats,
                 pool_output=self.down)
        sc = x
        kw = dict(name="conv_sc", kernel_size=1, update_stats=update_stats)
        if self.optimized:
            sc = conv(downsample(x), self.features, self.spec, **kw)
        elif self.down or in_ch != self.features:
            sc = conv(x, self.features, self.spec, pool_output=self.down, **kw)
        return h + sc


class ProjectionHead(nn.Module):
    """Conditional D output: linear(h) + <embed(y), h> (projection discriminator)."""

    num_classes: int
    spec: LayerSpec

    @nn.compact
    def __call__(self, h: Array, y: Array, *, update_stats: bool) -> Array:
        out = dense(h, 1, self.spec, name="linear", update_stats=update_stats)[:, 0]
        e = embed(
            y, self.num_classes, h.shape[-1], self.spec, name="embed", update_stats=update_stats
        )
        return out + jnp.sum(e * h, axis=-1)
