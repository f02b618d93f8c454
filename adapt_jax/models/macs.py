"""Per-sample MACs of linen modules (paper Appendix F), the unit of training-FLOPs accounting.

Counting rule (the reference implementation's `flops_calculator`), per sample, in MACs
(multiply-accumulates, no factor 2), on one traced forward (`jax.eval_shape`: shapes only, no
compute, so the biggest models are free to count):

- `nn.Dense`: `in * out` weight MACs, `+ out` if it has a bias. Applied to inputs with extra
  axes between batch and features, both terms are multiplied by the number of positions (the
  reference only meets 2-D `Linear` inputs, where this is the same).
- `nn.Conv`: `in * out * kh * kw * H_out * W_out` (`+ out * H_out * W_out` if bias); grouped
  convolutions use the kernel's real size `kh * kw * in/groups * out`.
- `nn.BatchNorm` with `use_scale`/`use_bias`: `C * H * W` per affine term (`2 * C * H * W` for
  the usual affine BN, `2 * C` for 1-D inputs); non-affine BN counts nothing.
- Nothing else: activations, pooling, up-sampling, attention matmuls, embeddings (incl.
  class-conditional BN tables and projection embeddings), spectral-norm power iterations.
  Conditional-BN gains computed by linears (StudioGAN BigGAN) are `nn.Dense` and counted, as the
  reference counts its `snlinear`s.

Layers inside `nn.SpectralNorm` wrappers are seen (the wrapped `nn.Conv`/`nn.Dense` is called
like any other), and are named by their kernel's path in 'params', which is the name the sparse
masks use, so `total_macs(layers, densities)` takes per-layer mask densities directly.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from adapt_jax.models.cpu_conv import ConvForms


@dataclasses.dataclass(frozen=True)
class LayerMacs:
    """Per-sample MACs of one counted layer.

    `name` is the '/'-joined 'params' path of the layer's kernel (of its BN scale, or bias when
    it has no scale): the key mask densities use. `weight_macs` scale with that kernel's density;
    `other_macs` (bias and BN terms) are always dense.
    """

    name: str
    kind: str  # 'dense' | 'conv' | 'bn'
    weight_macs: int
    other_macs: int


def _is_array(x: Any) -> bool:
    return hasattr(x, "shape") and hasattr(x, "dtype")


def _count(module: nn.Module, out: Any, inputs: Any = None) -> LayerMacs | None:
    """The reference's count for one call of `module` on `inputs` producing `out` (None: not
    counted)."""
    def name(leaf: str) -> str:
        return "/".join((*module.scope.path, leaf))

    params = module.variables.get("params", {})
    if isinstance(module, (nn.Dense, nn.Conv)):
        positions = math.prod(out.shape[1:-1])
        form = getattr(module, "conv_general_dilated", None)
        if isinstance(form, ConvForms) and form.pool_output:
            # A stride-1 'SAME' conv whose output is average-pooled inside the layer: counted at
            # the resolution it convolves (its input's), as the reference's conv-then-pool is.
            positions = math.prod(inputs.shape[1:-1])
        weight = math.prod(params["kernel"].shape) * positions
        other = out.shape[-1] * positions if module.use_bias else 0
        kind = "dense" if isinstance(module, nn.Dense) else "conv"
        return LayerMacs(name("kernel"), kind, weight, other)
    if isinstance(module, nn.BatchNorm):
        terms = int(module.use_scale) + int(module.use_bias)
        if not terms:
            return None
        leaf = "scale" if module.use_scale else "bias"
        channels = math.prod(params[leaf].shape)
        positions = math.prod(out.shape) // (out.shape[0] * channels)
        return LayerMacs(name(leaf), "bn", 0, terms * channels * positions)
    return None


def _merge(records: Sequence[LayerMacs]) -> list[LayerMacs]:
    """One entry per layer name, in call order: a layer called twice counts twice."""
    merged: dict[str, LayerMacs] = {}
    for r in records:
        prev = merged.get(r.name)
        merged[r.name] = r if prev is None else dataclasses.replace(
            prev, weight_macs=prev.weight_macs + r.weight_macs,
            other_macs=prev.other_macs + r.other_macs)
    return list(merged.values())


def _trace(module: nn.Module, variables: Any, args: tuple, kwargs: dict
           ) -> tuple[list[LayerMacs], Any]:
    """Abstractly run `module.apply`, recording counted calls; returns (layers, output shape).

    Array-like leaves of args/kwargs (arrays or `jax.ShapeDtypeStruct`) are traced; everything
    else (`train=True`, None labels, ...) stays a Python value so modules can branch on it.
    """
    leaves, treedef = jax.tree_util.tree_flatten((args, kwargs))
    dynamic = [x for x in leaves if _is_array(x)]
    records: list[LayerMacs] = []
    active: list[tuple[str, ...]] = []

    def intercept(next_fun, call_args, call_kwargs, context):
        path = tuple(context.module.scope.path) if context.module.scope else ()
        # A subclass calling super().__call__ is intercepted twice: count the outer call only.
        if context.method_name != "__call__" or path in active:
            return next_fun(*call_args, **call_kwargs)
        active.append(path)
        try:
            out = next_fun(*call_args, **call_kwargs)
        finally:
            active.pop()
        layer = _count(context.module, out, call_args[0] if call_args else None)
        if layer is not None:
            records.append(layer)
        return out

    def run(variables, dynamic):
        it = iter(dynamic)
        a, kw = jax.tree_util.tree_unflatten(
            treedef, [next(it) if _is_array(x) else x for x in leaves])
        with nn.intercept_methods(intercept):
            out, _ = module.apply(variables, *a, mutable=True, **kw)
        return out

    out = jax.eval_shape(run, variables, dynamic)
    return _merge(records), out


def per_sample_macs(module: nn.Module, variables: Any, *args: Any, **kwargs: Any
                    ) -> list[LayerMacs]:
    """Per-sample MACs of every counted layer in one forward `module.apply(variables, ...)`.

    Pass batch-1 inputs (arrays or `jax.ShapeDtypeStruct`); counts never depend on the batch
    size anyway. `variables` may be abstract (`jax.eval_shape(module.init, ...)`).
    """
    return _trace(module, variables, args, kwargs)[0]


def total_macs(layers: Sequence[LayerMacs], densities: Mapping[str, float] | None = None
               ) -> float:
    """`sum(weight_macs * density + other_macs)`; layers missing from `densities` are dense."""
    densities = densities or {}
    return float(sum(lm.weight_macs * densities.get(lm.name, 1.0) + lm.other_macs
                     for lm in layers))


def gan_layer_macs(model: Any, g_variables: Any, d_variables: Any
                   ) -> tuple[list[LayerMacs], list[LayerMacs]]:
    """Per-sample layers of G (on one z) and D (on one image shaped like G's output).

    As in the reference: G in train mode, D updating its spectral-norm state, a label when the
    model is conditional. Variables may be abstract.
    """
    z = jax.ShapeDtypeStruct((1, model.z_dim), jnp.float32)
    y = jax.ShapeDtypeStruct((1,), jnp.int32) if model.num_classes else None
    g_layers, image = _trace(model.generator, g_variables, (z, y), {"train": True})
    d_layers, _ = _trace(model.discriminator, d_variables, (image, y), {"update_stats": True})
    return g_layers, d_layers
