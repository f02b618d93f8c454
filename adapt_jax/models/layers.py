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
import math
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from adapt_jax.models.cpu_conv import ConvForms, check_conv_impl, downsample, resolve_conv_impl

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
    conv_impl: which exact conv forms the convs may use (`cpu_conv.CONV_IMPLS`); `models.create`
    resolves 'auto' for the backend once, so the choice is fixed with the module definition.
    """

    sn: bool = False
    init: str = "torch"
    sn_eps: float = 1e-12
    dtype: Any = jnp.float32
    conv_impl: str = "auto"

    def __post_init__(self) -> None:
        if self.init not in INITS:
            raise ValueError(f"unknown init {self.init!r}; valid: {', '.join(INITS)}")
        check_conv_impl(self.conv_impl)

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
    (`cpu_conv.ConvForms`, within what `spec.conv_impl` allows); parameters, their names and
    the counted MACs (`adapt_jax.models.macs`) are those of the conv at the larger resolution."""
    fan_in = kernel_size * kernel_size * x.shape[-1]
    conv_fn = ConvForms(resolve_conv_impl(spec.conv_impl), upsample_input=upsample_input,
                        pool_output=pool_output)
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
