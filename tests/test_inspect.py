"""The inspect CLI on the small BigGAN family (16x16, widths 16, 10 classes)."""

import json
import math
import subprocess
import sys
import textwrap

import jax
import pytest

from adapt_jax import models, sparse
from adapt_jax.config_base import get_base_config
from adapt_jax.models import macs
from adapt_jax.tools import inspect_model as inspect

CONFIG_FILE = textwrap.dedent("""\
    from adapt_jax.config_base import get_base_config


    def get_config():
        c = get_base_config()
        c.method = "static"
        c.strategy = "balance"
        c.model.name = "biggan"
        c.model.resolution = 16
        c.model.g_ch = c.model.d_ch = 16
        c.model.num_classes = 10
        c.train.n_critic, c.train.batch_d, c.train.batch_g = 2, 8, 16
        return c
    """)


def _config(method: str):
    c = get_base_config()
    c.method = method
    c.model.name, c.model.resolution, c.model.num_classes = "biggan", 16, 10
    c.model.g_ch = c.model.d_ch = 16
    return c


@pytest.fixture(scope="module")
def cli_report(tmp_path_factory) -> dict:
    path = tmp_path_factory.mktemp("cfg") / "tiny.py"
    path.write_text(CONFIG_FILE)
    proc = subprocess.run(
        [sys.executable, "-m", "adapt_jax.inspect", f"--config={path}", "--json",
         "--config.sparse.density_g=0.2"],
        capture_output=True, text=True, timeout=300, check=True)
    return json.loads(proc.stdout)


def _maskable_sizes() -> tuple[int, int]:
    model = models.create(_config("static").model)
    g_vars, d_vars = jax.eval_shape(model.init, jax.random.key(0))
    return tuple(
        sum(math.prod(s) for s in sparse.maskable_shapes(v["params"], rule).values())
        for v, rule in ((g_vars, model.g_is_maskable), (d_vars, model.d_is_maskable)))


def test_cli_json_totals_are_sums_of_layers(cli_report):
    assert set(cli_report) == {"generator", "discriminator"}
    for key, maskable in zip(("generator", "discriminator"), _maskable_sizes(), strict=True):
        net = cli_report[key]
        assert {"params", "maskable_params", "macs_dense", "macs_sparse", "layers"} <= set(net)
        rows = net["layers"]
        assert net["params"] == sum(math.prod(r["shape"]) for r in rows)
        assert net["macs_dense"] == sum(r["macs_dense"] for r in rows)
        assert net["macs_sparse"] == pytest.approx(sum(r["macs_sparse"] for r in rows))
        assert net["maskable_params"] == maskable
        # --config.sparse.density_g=0.2 applied; static + balance gives D the same density.
        assert net["density"] == 0.2
        assert sum(r["active"] for r in rows if r["maskable"]) == round(0.2 * maskable)
        assert all(r["active"] == math.prod(r["shape"]) for r in rows if not r["maskable"])
        assert 0 < net["macs_sparse"] < net["macs_dense"]
    # Reference per-iteration multipliers: G = 8*2 + 3*16 = 64, D = 3*8*2 + 16 = 64.
    g, d = cli_report["generator"], cli_report["discriminator"]
    assert g["iteration_macs_sparse"] == pytest.approx(g["macs_sparse"] * 64)
    assert d["iteration_macs_dense"] == d["macs_dense"] * 64


def test_layer_macs_match_flops_and_a_hand_count(cli_report):
    net = cli_report["discriminator"]
    rows = [r for r in net["layers"] if r["kind"]]
    layers = [macs.LayerMacs(r["name"], r["kind"], r["weight_macs"], r["other_macs"])
              for r in rows]
    dens = {r["name"]: r["active"] / math.prod(r["shape"]) for r in rows}
    assert macs.total_macs(layers) == net["macs_dense"]
    assert macs.total_macs(layers, dens) == pytest.approx(net["macs_sparse"])
    # First D conv: 3x3, 3 -> 16 channels, SAME on 16x16, with bias.
    first = next(r for r in rows if r["name"] == "block1/conv1/layer_instance/kernel")
    assert (first["weight_macs"], first["other_macs"]) == (3 * 16 * 9 * 256, 16 * 256)


def test_dense_method_is_dense_and_table_lists_every_parameter():
    report = inspect.build_report(_config("dense"))
    for net in report.values():
        assert net["macs_sparse"] == net["macs_dense"]
        assert net["active_maskable"] == net["maskable_params"]
        assert net["iteration_macs_sparse"] == net["iteration_macs_dense"]
    table = inspect.format_report(report)
    names = [r["name"] for net in report.values() for r in net["layers"]]
    assert all(name in table for name in names)
    assert "(1.0000 of dense)" in table


def test_cli_invalid_density_is_one_line(tmp_path):
    path = tmp_path / "tiny.py"
    path.write_text(CONFIG_FILE)
    proc = subprocess.run(
        [sys.executable, "-m", "adapt_jax.inspect", f"--config={path}",
         "--config.sparse.density_g=2"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "error: config.sparse.density_g=2.0 is outside (0, 1]" in proc.stderr
    assert "Traceback" not in proc.stderr
