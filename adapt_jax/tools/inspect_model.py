"""Per-parameter sizes, mask densities and MACs of a config's G and D, without training.

    python -m adapt_jax.inspect --config=configs/sngan_cifar10.py [--json]
    python -m adapt_jax.inspect --config=configs/x.py --config.sparse.density_g=0.2

Lets a user see what a config costs (per-sample and per-iteration MACs, dense and at the
config's initial densities) and how the initial distribution spreads the active weights, before
committing compute. Models are initialized abstractly (`jax.eval_shape`), so even BigGAN-64
inspects in seconds. Densities: G at `sparse.density_g` (1.0 for `dense`), D at the initial
density the method implies (`methods.initial_densities`); per-layer counts are the exact
`sparse.layer_counts` the mask init uses, and a layer's sparse MACs use `active / size`.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable, Sequence
from typing import Any

import jax
from absl import app, flags
from ml_collections import ConfigDict, config_flags

from adapt_jax import models, sparse
from adapt_jax.gan import methods
from adapt_jax.models import macs
from adapt_jax.training import flops, validation

IsMaskable = Callable[[str, Any], bool]


def net_report(params: Any, is_maskable: IsMaskable, layers: Sequence[macs.LayerMacs],
               density: float, distribution: str) -> dict:
    """Rows for every parameter of one net plus totals (`params`, `macs_dense`, ...)."""
    shapes = sparse.maskable_shapes(params, is_maskable)
    p_layer = sparse.layer_densities(shapes, density, distribution) if shapes else {}
    counts = sparse.layer_counts(shapes, density, distribution) if shapes else {}
    by_name = {lm.name: lm for lm in layers}
    rows = []
    for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
        name = sparse.path_str(path)
        size = math.prod(leaf.shape)
        maskable = name in shapes
        active = counts[name] if maskable else size
        lm = by_name.pop(name, None)
        weight, other = (lm.weight_macs, lm.other_macs) if lm else (0, 0)
        rows.append({
            "name": name, "shape": list(leaf.shape), "size": size, "maskable": maskable,
            "density": p_layer[name] if maskable else 1.0, "active": active,
            "kind": lm.kind if lm else None, "weight_macs": weight, "other_macs": other,
            "macs_dense": weight + other,
            "macs_sparse": weight * (active / size if size else 1.0) + other,
        })
    if by_name:
        raise ValueError(f"counted layers that are not parameters: {sorted(by_name)[:5]}")
    return {
        "density": density, "distribution": distribution,
        "params": sum(r["size"] for r in rows),
        "maskable_params": sum(r["size"] for r in rows if r["maskable"]),
        "active_maskable": sum(r["active"] for r in rows if r["maskable"]),
        "macs_dense": sum(r["macs_dense"] for r in rows),
        "macs_sparse": sum(r["macs_sparse"] for r in rows),
        "layers": rows,
    }


def build_report(config: ConfigDict) -> dict:
    """`{"generator": {...}, "discriminator": {...}}` for `config` (see `net_report`).

    Each net also gets `iteration_macs_dense` / `iteration_macs_sparse`: one training
    iteration's MACs by the reference formula (`flops.iteration_multipliers('reference')`).
    """
    model = models.create(config.model)
    g_vars, d_vars = jax.eval_shape(model.init, jax.random.key(config.seed))
    g_layers, d_layers = macs.gan_layer_macs(model, g_vars, d_vars)
    d_g, d_d = methods.initial_densities(config)
    multipliers = flops.iteration_multipliers(
        "reference", batch_d=config.train.batch_d, batch_g=config.train.batch_g,
        n_critic=config.train.n_critic)
    report = {}
    for key, variables, is_maskable, layers, density, mult in (
            ("generator", g_vars, model.g_is_maskable, g_layers, d_g, multipliers[0]),
            ("discriminator", d_vars, model.d_is_maskable, d_layers, d_d, multipliers[1])):
        net = net_report(variables["params"], is_maskable, layers, density,
                         config.sparse.distribution)
        net["iteration_multiplier"] = mult
        net["iteration_macs_dense"] = net["macs_dense"] * mult
        net["iteration_macs_sparse"] = net["macs_sparse"] * mult
        report[key] = net
    return report


def _si(x: float) -> str:
    """1234567 -> '1.235M': MAC counts span 1e3..1e15."""
    for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(x) >= scale:
            return f"{x / scale:.4g}{unit}"
    return f"{x:.4g}"


def format_net(title: str, net: dict) -> str:
    """Human table of one `net_report` result."""
    width = max(len(r["name"]) for r in net["layers"])
    head = (f"{'parameter':<{width}}  {'shape':<18} {'params':>10} mask {'density':>8} "
            f"{'active':>10} {'MACs':>9} {'MACs@d':>9}")
    lines = [f"{title}: density {net['density']:.4g} ({net['distribution']})", head,
             "-" * len(head)]
    for r in net["layers"]:
        mac_cells = (_si(r["macs_dense"]), _si(r["macs_sparse"])) if r["kind"] else ("", "")
        lines.append(
            f"{r['name']:<{width}}  {str(tuple(r['shape'])):<18} {r['size']:>10,} "
            f"{'yes' if r['maskable'] else '-':>4} {r['density']:>8.4f} {r['active']:>10,} "
            f"{mac_cells[0]:>9} {mac_cells[1]:>9}")
    maskable = net["maskable_params"]
    lines += [
        "-" * len(head),
        f"params {net['params']:,}; maskable {maskable:,}; active maskable "
        f"{net['active_maskable']:,} ({net['active_maskable'] / max(maskable, 1):.4f})",
        f"per-sample MACs: dense {_si(net['macs_dense'])}, at density {_si(net['macs_sparse'])}",
        f"per-iteration MACs (reference formula, x{net['iteration_multiplier']:,} samples): "
        f"dense {_si(net['iteration_macs_dense'])}, at density "
        f"{_si(net['iteration_macs_sparse'])}",
    ]
    return "\n".join(lines)


def format_report(report: dict) -> str:
    g, d = report["generator"], report["discriminator"]
    dense = g["iteration_macs_dense"] + d["iteration_macs_dense"]
    sparse_ = g["iteration_macs_sparse"] + d["iteration_macs_sparse"]
    return "\n\n".join([
        format_net("Generator", g), format_net("Discriminator", d),
        f"G+D per iteration: dense {_si(dense)}, at initial densities {_si(sparse_)} "
        f"({sparse_ / dense:.4f} of dense)"])


def main(argv: Sequence[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    config = flags.FLAGS.config
    try:
        validation.check_values(config)
        validation.check_model(config)
    except validation.ConfigError as e:  # one line naming the field, no traceback
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    report = build_report(config)
    print(json.dumps(report) if flags.FLAGS.json else format_report(report))


def _define_flags() -> None:
    """Only when run as a program, so importing this module never claims --config."""
    config_flags.DEFINE_config_file("config", None, "Path to a configs/*.py file.",
                                    lock_config=True)
    flags.DEFINE_bool("json", False, "Print one JSON object instead of tables.")
    flags.mark_flag_as_required("config")


def cli() -> None:
    """The command line (`python -m adapt_jax.inspect`)."""
    _define_flags()
    app.run(main)
