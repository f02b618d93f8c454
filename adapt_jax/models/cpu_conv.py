"""Exact convolution forms that XLA:CPU lacks, and the conv function `layers.conv` hands nn.Conv.

XLA:CPU computes a conv's weight gradient as a conv whose "kernel" is the whole output-gradient
image; its cost grows with the image: ~1.5x the forward at 4x4, ~3x at 16x16, 6-9x at 32x32,
and 65x for a 1x1 conv at 32x32 (`benchmarks/conv_gap.py --config full`). That made full CPU G
steps several times slower than PyTorch. Under 'cpu_auto':
- 1x1 convs are a matmul (einsum): forward, input and weight gradients are all GEMMs;
- kxk convs whose weight gradient XLA:CPU handles badly use `conv_matmul_grad`: XLA's forward
  and input gradient, the weight gradient as one GEMM per kernel offset,
  dW[i, j] = pad(x)[:, i:i+H, j:j+W, :]^T @ dy (`_taps_pay_off` says when);
- other convs (small images or few channels, where XLA's own gradient is as fast) are plain;
- convs of an upsampled input (G) or with a pooled output (D) take the resampling forms below:
  16 instead of 36 products per low-resolution pixel (`benchmarks/resample_convs.py`).
Same math, float32 sums in another order (tests/test_conv_impl.py: within 1e-4).

Which forms a layer may use is `LayerSpec.conv_impl`, resolved once by `models.create` (the
config's `model.conv_impl`), so it is a static part of the module definition: a compiled
function can never run a choice other than the one its model was built with.
"""

from __future__ import annotations

import dataclasses
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp

Array = jax.Array

# 'auto': 'cpu_auto' on the CPU backend, 'xla' elsewhere. 'xla': plain convs (only the exact
# 1x1 reorderings of resampling convs). 'matmul_grad': the matmul forms for every eligible conv
# regardless of size (tests, benchmarks).
CONV_IMPLS = ("auto", "xla", "cpu_auto", "matmul_grad")


def check_conv_impl(impl: str) -> None:
    """ValueError naming the valid values unless `impl` is one of `CONV_IMPLS`."""
    if impl not in CONV_IMPLS:
        raise ValueError(f"unknown conv_impl {impl!r}; valid: {', '.join(CONV_IMPLS)}")


def resolve_conv_impl(impl: str) -> str:
    """`impl` with 'auto' replaced by the choice for the current default backend."""
    check_conv_impl(impl)
    if impl == "auto":
        return "cpu_auto" if jax.default_backend() == "cpu" else "xla"
    return impl


def upsample(x: Array) -> Array:
    """Nearest-neighbour x2."""
    return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)


def downsample(x: Array) -> Array:
    """2x2 average pool, stride 2 (floors odd sizes like PyTorch's avg_pool2d)."""
    return nn.avg_pool(x, (2, 2), strides=(2, 2))


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


@dataclasses.dataclass(frozen=True)
class ConvForms:
    """Drop-in for lax.conv_general_dilated inside nn.Conv (same params, names, shapes): the
    forms above for the stride-1, undilated, ungrouped NHWC convs this package builds when
    `impl` allows them; lax.conv_general_dilated otherwise. Frozen and hashable, so the choice
    is part of the module definition (and readable by `adapt_jax.models.macs`).

    impl: a resolved `CONV_IMPLS` value ('xla', 'cpu_auto' or 'matmul_grad').
    upsample_input: `lhs` is the low-resolution input of conv(upsample(lhs)). A 1x1 conv then
    runs before the upsampling (the same products, 4x fewer, on every backend); a 3x3 conv
    takes the sub-pixel form unless impl is 'xla'; anything else upsamples first.
    pool_output: return downsample(conv(lhs)). A 1x1 conv then runs after the pooling (4x fewer
    products, every backend); a 3x3 conv takes the stride-2 4x4 form unless impl is 'xla';
    anything else convolves, then pools.
    """

    impl: str = "xla"
    upsample_input: bool = False
    pool_output: bool = False

    def __post_init__(self) -> None:
        check_conv_impl(self.impl)
        if self.impl == "auto":
            raise ValueError("ConvForms needs a resolved conv impl (see resolve_conv_impl)")
        if self.upsample_input and self.pool_output:
            raise ValueError("upsample_input and pool_output exclude each other")

    def __call__(self, lhs, rhs, window_strides, padding, lhs_dilation=None, rhs_dilation=None,
                 dimension_numbers=None, feature_group_count=1, precision=None, **kwargs):
        simple = _is_simple_nhwc(lhs, window_strides, lhs_dilation, rhs_dilation,
                                 dimension_numbers, feature_group_count, kwargs)
        pads = _explicit_pads(padding, rhs.shape[:2]) if simple else None
        is_1x1 = rhs.shape[:2] == (1, 1) and pads == ((0, 0), (0, 0))

        def conv_at(x: Array) -> Array:
            """This conv at x's resolution, in the fastest form `impl` allows."""
            # The CPU forms are float32-only; mixed precision is a GPU/TPU feature.
            if pads is not None and self.impl != "xla" and x.dtype == jnp.float32:
                if is_1x1:
                    return conv1x1_matmul(x, rhs, precision)
                out_hw = tuple(x.shape[1 + i] + sum(pads[i]) - rhs.shape[i] + 1
                               for i in range(2))
                if self.impl == "matmul_grad" or _taps_pay_off(out_hw, *rhs.shape[2:]):
                    return conv_matmul_grad(x, rhs, pads, precision)
            return jax.lax.conv_general_dilated(
                x, rhs, window_strides, padding, lhs_dilation=lhs_dilation,
                rhs_dilation=rhs_dilation, dimension_numbers=dimension_numbers,
                feature_group_count=feature_group_count, precision=precision, **kwargs)

        if not (self.upsample_input or self.pool_output):
            return conv_at(lhs)
        fast_3x3 = (rhs.shape[:2] == (3, 3) and pads == ((1, 1), (1, 1))
                    and self.impl != "xla" and lhs.dtype == jnp.float32)
        if self.upsample_input:
            if is_1x1:
                return upsample(conv_at(lhs))
            return upconv3x3_subpixel(lhs, rhs, precision) if fast_3x3 else conv_at(
                upsample(lhs))
        if is_1x1:
            return conv_at(downsample(lhs))
        if fast_3x3 and lhs.shape[1] % 2 == 0 and lhs.shape[2] % 2 == 0:
            return conv3x3_avgpool(lhs, rhs, precision)
        return downsample(conv_at(lhs))
