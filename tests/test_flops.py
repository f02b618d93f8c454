"""MAC counting against hand computations, and the training-FLOPs accountant's formulas."""

import functools
import json

import flax.linen as nn
import jax
import jax.numpy as jnp
import pytest
from flax import traverse_util

from adapt_jax.models import macs
from adapt_jax.training import flops
from adapt_jax.training.flops import LayerMacs, TrainingFlops


class ConvBnDense(nn.Module):
    """conv 3x3 -> (BN) -> dense; `bias` toggles both layers' biases."""

    bias: bool
    bn: str  # 'affine' | 'scale' | 'none'

    @nn.compact
    def __call__(self, x, train: bool = True):
        x = nn.Conv(4, (3, 3), use_bias=self.bias, name="conv")(x)
        if self.bn != "none":
            x = nn.BatchNorm(use_running_average=not train, use_bias=self.bn == "affine",
                             use_scale=self.bn != "none", name="bn")(x)
        x = x.reshape(x.shape[0], -1)
        return nn.Dense(5, use_bias=self.bias, name="fc")(x)


def _macs(module, x, **kwargs):
    variables = jax.eval_shape(functools.partial(module.init, **kwargs), jax.random.key(0), x)
    return {lm.name: lm for lm in macs.per_sample_macs(module, variables, x, **kwargs)}


def test_conv_bn_dense_with_bias_by_hand():
    x = jnp.ones((1, 8, 8, 2))
    got = _macs(ConvBnDense(bias=True, bn="affine"), x, train=True)
    assert list(got) == ["conv/kernel", "bn/scale", "fc/kernel"]
    # conv: 2 in * 4 out * 3*3 taps * 8*8 positions; bias 4 * 8*8.
    assert got["conv/kernel"] == LayerMacs("conv/kernel", "conv", 2 * 4 * 9 * 64, 4 * 64)
    # affine BN: scale and shift on 4 channels * 64 positions.
    assert got["bn/scale"] == LayerMacs("bn/scale", "bn", 0, 2 * 4 * 64)
    # dense on the flattened 8*8*4 = 256 features, 5 out.
    assert got["fc/kernel"] == LayerMacs("fc/kernel", "dense", 256 * 5, 5)
    densities = {"conv/kernel": 0.25, "fc/kernel": 0.5}
    expected = 0.25 * 4608 + 256 + 512 + 0.5 * 1280 + 5
    assert macs.total_macs(list(got.values()), densities) == expected
    assert macs.total_macs(list(got.values())) == 4608 + 256 + 512 + 1280 + 5


def test_no_bias_strided_and_partial_bn_by_hand():
    class Net(nn.Module):
        @nn.compact
        def __call__(self, x):
            x = nn.Conv(3, (3, 3), strides=2, padding="VALID", use_bias=False)(x)  # 9x9 -> 4x4
            x = nn.BatchNorm(use_running_average=False, use_bias=False)(x)  # scale only
            x = nn.BatchNorm(use_running_average=False, use_scale=False, use_bias=False)(x)
            x = nn.Dense(7, use_bias=False)(x.reshape(1, -1))
            return nn.BatchNorm(use_running_average=False)(x)  # 1-D affine BN

    got = list(_macs(Net(), jnp.ones((1, 9, 9, 2))).values())
    assert got == [
        LayerMacs("Conv_0/kernel", "conv", 2 * 3 * 9 * 16, 0),
        LayerMacs("BatchNorm_0/scale", "bn", 0, 3 * 16),
        LayerMacs("Dense_0/kernel", "dense", 48 * 7, 0),
        LayerMacs("BatchNorm_2/scale", "bn", 0, 2 * 7),
    ]


class SNBlock(nn.Module):
    def setup(self):
        self.conv1 = nn.SpectralNorm(nn.Conv(4, (3, 3), padding="VALID"))

    def __call__(self, x, update_stats):
        return self.conv1(x, update_stats=update_stats)


class SNNet(nn.Module):
    @nn.compact
    def __call__(self, x, update_stats: bool):
        x = SNBlock(name="block1")(x, update_stats)
        x = nn.avg_pool(nn.relu(x), (2, 2), (2, 2))  # not counted
        x = x.reshape(x.shape[0], -1)
        return nn.SpectralNorm(nn.Dense(1, use_bias=False), name="head")(
            x, update_stats=update_stats)


def test_spectral_norm_layers_named_by_their_kernel_paths():
    x = jax.ShapeDtypeStruct((1, 6, 6, 3), jnp.float32)
    module = SNNet()
    variables = jax.eval_shape(functools.partial(module.init, update_stats=False),
                               jax.random.key(0), x)
    layers = macs.per_sample_macs(module, variables, x, update_stats=True)
    kernels = [k for k in traverse_util.flatten_dict(variables["params"], sep="/")
               if k.endswith("kernel")]
    assert sorted(lm.name for lm in layers) == sorted(kernels)
    by_name = {lm.name: lm for lm in layers}
    # 6x6 VALID 3x3 -> 4x4; pooled to 2x2x4 = 16 features.
    assert by_name["block1/conv1/layer_instance/kernel"] == LayerMacs(
        "block1/conv1/layer_instance/kernel", "conv", 3 * 4 * 9 * 16, 4 * 16)
    assert by_name["Dense_0/kernel"] == LayerMacs("Dense_0/kernel", "dense", 16, 0)


def test_concrete_and_abstract_inputs_count_alike():
    module, x = nn.Dense(3), jnp.ones((1, 4))
    variables = module.init(jax.random.key(0), x)
    abstract = jax.eval_shape(lambda: (variables, x))
    assert (macs.per_sample_macs(module, variables, x)
            == macs.per_sample_macs(module, *abstract)
            == [LayerMacs("kernel", "dense", 12, 3)])


def test_subclass_calling_super_counts_once():
    class Doubled(nn.Dense):
        def __call__(self, x):
            return super().__call__(x) * 2

    assert list(_macs(Doubled(3), jnp.ones((1, 4))).values()) == [
        LayerMacs("kernel", "dense", 12, 3)]


def test_layer_called_twice_counts_twice():
    class Twice(nn.Module):
        @nn.compact
        def __call__(self, x):
            dense = nn.Dense(3)
            return dense(dense(x))

    assert _macs(Twice(), jnp.ones((1, 3))) == {
        "Dense_0/kernel": LayerMacs("Dense_0/kernel", "dense", 2 * 9, 2 * 3)}


class Resampling(nn.Module):
    """A G-style conv of an upsampled input and D-style pooled convs (odd sizes floor)."""

    @nn.compact
    def __call__(self, x):
        from adapt_jax.models import layers

        spec = layers.LayerSpec()
        up = layers.conv(x, 4, spec, name="up", upsample_input=True)  # 3x3 -> 6x6 output
        pooled = layers.conv(x, 4, spec, name="pool3", pool_output=True)  # 3x3 conv, 1x1 out
        pooled1 = layers.conv(x, 4, spec, name="pool1", kernel_size=1, pool_output=True)
        return up, pooled, pooled1


def test_fused_resampling_convs_count_as_the_literal_ops():
    """The fused forms are counted as the reference counts upsample-then-conv and
    conv-then-pool: at the resolution the conv runs on, whatever the fused form computes."""
    got = _macs(Resampling(), jnp.ones((1, 3, 3, 2)))
    name = "{}/layer_instance/kernel".format
    assert got[name("up")] == LayerMacs(name("up"), "conv", 3 * 3 * 2 * 4 * 6 * 6, 4 * 6 * 6)
    assert got[name("pool3")] == LayerMacs(name("pool3"), "conv", 3 * 3 * 2 * 4 * 9, 4 * 9)
    assert got[name("pool1")] == LayerMacs(name("pool1"), "conv", 2 * 4 * 9, 4 * 9)


# ---------------------------------------------------------------------------------------------
# TrainingFlops. Per-sample MACs of the toy nets, by hand:
#   G dense  = 1000 + 10 + 3000 + 40 = 4050; at G_DENS: 500 + 10 + 600 + 40 = 1150
#   D dense  = 2000 + 5 + 600        = 2605; at D_DENS: 500 + 5 + 600       = 1105
G_LAYERS = [LayerMacs("a/kernel", "dense", 1000, 10), LayerMacs("b/kernel", "conv", 3000, 0),
            LayerMacs("bn/scale", "bn", 0, 40)]
D_LAYERS = [LayerMacs("c/kernel", "conv", 2000, 5), LayerMacs("d/kernel", "dense", 600, 0)]
G_DENS = {"a/kernel": 0.5, "b/kernel": 0.2}
D_DENS = {"c/kernel": 0.25, "d/kernel": 1.0}
BD, BG, NC, T = 4, 6, 3, 7
# Reference per-iteration multipliers: G = BD*NC + 3*BG = 30, D = 3*BD*NC + BG = 42.


def _accountant(mode, g_dens=G_DENS, d_dens=D_DENS, g_interval=None, d_interval=None,
                num_iters=T):
    return TrainingFlops(G_LAYERS, D_LAYERS, batch_d=BD, batch_g=BG, n_critic=NC,
                         num_iters=num_iters, mode=mode, g_interval=g_interval,
                         d_interval=d_interval, g_densities=g_dens, d_densities=d_dens)


def _run_static(acc, br_every=2):
    for t in range(1, T + 1):
        acc.iteration(t, None, None, br_measured=t % br_every == 0, g_event=False, d_event=False)
    return acc


def test_reference_static_run_equals_closed_form():
    tot = _run_static(_accountant("reference")).totals()
    assert tot["g"] == 1150 * 30 * T
    assert tot["d"] == 1105 * 42 * NC * T  # D counted in D steps: the n_critic quirk
    assert tot["g_dense"] == 4050 * 30 * T
    assert tot["d_dense"] == 2605 * 42 * NC * T
    norm = _run_static(_accountant("reference")).normalized()
    assert norm["g"] == pytest.approx(1150 / 4050)
    assert norm["d"] == pytest.approx(1105 / 2605)
    assert norm["total"] == pytest.approx((1150 * 30 + 1105 * 42 * NC) /
                                          (4050 * 30 + 2605 * 42 * NC))


def test_exact_exceeds_reference_by_br_and_second_pass_terms():
    ref = _run_static(_accountant("reference")).totals()
    exact = _run_static(_accountant("exact")).totals()
    n_br = 3  # t = 2, 4, 6
    for suffix, f_g, f_d in (("", 1150, 1105), ("_dense", 4050, 2605)):
        # G: one extra forward of the G batch per BR measurement.
        assert exact["g" + suffix] - ref["g" + suffix] == f_g * BG * n_br
        # D: reference D without the n_critic over-count, plus the fake pass (fwd+bwd) of every
        # D step, plus D(G_post(z)) on BG and D(x_r) on BD per BR measurement.
        assert (exact["d" + suffix] - ref["d" + suffix] / NC
                == f_d * (3 * BD * NC * T + n_br * (BG + BD)))


@pytest.mark.parametrize("mode", flops.MODES)
@pytest.mark.parametrize("dens", [{}, {"a/kernel": 1.0, "c/kernel": 1.0}])
def test_dense_run_normalizes_to_one(mode, dens):
    g = {k: v for k, v in dens.items() if k in G_DENS}
    d = {k: v for k, v in dens.items() if k in D_DENS}
    acc = _run_static(_accountant(mode, g, d))
    assert acc.normalized() == {"g": 1.0, "d": 1.0, "total": 1.0}


def _dynamic_run(mode):
    """G mask updated at t = 4, 8 of T = 10 (interval 4); D fixed."""
    acc = _accountant(mode, g_dens={"a/kernel": 0.5}, g_interval=4, num_iters=10)
    new = {4: {"a/kernel": 0.1}, 8: {"a/kernel": 0.3}}
    for t in range(1, 11):
        acc.iteration(t, new.get(t), None, br_measured=False, g_event=t in new, d_event=False)
    return acc


def test_reference_dynamic_intervals_by_hand():
    # Setup + 2 events, each 4 iterations at the density after it: 12 iterations for T = 10.
    f = [500 + 10 + 3000 + 40, 100 + 10 + 3000 + 40, 300 + 10 + 3000 + 40]
    tot = _dynamic_run("reference").totals()
    assert tot["g"] == sum(f) * 30 * 4
    assert tot["g_dense"] == 4050 * 30 * 12


T_DENSE, T_FINE = 6, 3  # post-hoc: T dense iterations, a prune at T, F fine-tuning ones


def _posthoc_run(mode, cls=TrainingFlops):
    acc = cls(G_LAYERS, D_LAYERS, batch_d=BD, batch_g=BG, n_critic=NC, mode=mode,
              num_iters=T_DENSE + T_FINE, dense_iters=T_DENSE, g_interval=(T_DENSE, T_FINE),
              d_interval=None, g_densities={}, d_densities={})
    for t in range(1, T_DENSE + T_FINE + 1):
        acc.iteration(t, G_DENS if t == T_DENSE else None, None, br_measured=False,
                      g_event=t == T_DENSE, d_event=False)
    return acc


def test_reference_posthoc_counts_dense_training_then_sparse_finetuning():
    """The reference total of G is F(1) * T + F(d) * F."""
    acc = _posthoc_run("reference")
    tot = acc.totals()
    assert tot["g"] == (4050 * T_DENSE + 1150 * T_FINE) * 30
    assert tot["g_dense"] == 4050 * (T_DENSE + T_FINE) * 30
    state = json.loads(json.dumps(acc.to_dict()))  # the tuple survives a JSON round trip
    restored = TrainingFlops.from_dict(state, G_LAYERS, D_LAYERS)
    assert restored.totals() == tot and restored.normalized() == acc.normalized()


@pytest.mark.parametrize("mode", flops.MODES)
def test_posthoc_is_normalized_by_the_t_iteration_dense_run(mode):
    """Paper Appendix E.3: post-hoc costs "around 150%" of the dense run of T iterations: the
    T dense iterations count fully and D stays dense while G fine-tunes, so it exceeds 1."""
    acc = _posthoc_run(mode)
    m_g, m_d = flops.iteration_multipliers(mode, batch_d=BD, batch_g=BG, n_critic=NC)
    m_d *= NC if mode == "reference" else 1  # the reference's n_critic quirk
    g = (4050 * T_DENSE + 1150 * T_FINE) * m_g
    d = 2605 * (T_DENSE + T_FINE) * m_d
    paper = acc.normalized()
    assert paper["g"] == pytest.approx(g / (4050 * T_DENSE * m_g))
    assert paper["d"] == pytest.approx((T_DENSE + T_FINE) / T_DENSE)
    assert paper["total"] == pytest.approx((g + d) / ((4050 * m_g + 2605 * m_d) * T_DENSE))
    assert 1.0 < paper["total"] < 1.5
    same = acc.normalized(same_length=True)
    assert same["total"] == pytest.approx((g + d) / ((4050 * m_g + 2605 * m_d) * 9))
    assert same["total"] < 1.0
    report = acc.report()
    assert report["normalized"] == paper and report["dense_iterations"] == T_DENSE
    assert report["normalized_vs_dense_9_iterations"] == same


def test_report_has_no_extra_when_the_dense_run_is_as_long():
    assert _run_static(_accountant("exact")).report().keys() == {"normalized"}


def test_ledger_keeps_both_modes_and_leads_with_the_configured_one():
    ledger = _posthoc_run("exact", flops.FlopsLedger)
    for mode in flops.MODES:
        assert ledger.books[mode].totals() == _posthoc_run(mode).totals()
    assert ledger.normalized() == _posthoc_run("exact").normalized()
    assert ledger.totals() == _posthoc_run("exact").totals()
    summary = ledger.summary()
    assert summary["lead"] == "exact"
    assert {m: summary[m] for m in flops.MODES} == {m: _posthoc_run(m).report()
                                                     for m in flops.MODES}
    assert summary["reference"]["normalized"] != summary["exact"]["normalized"]
    state = json.loads(json.dumps(ledger.to_dict()))
    restored = flops.FlopsLedger.from_dict(state, G_LAYERS, D_LAYERS)
    assert restored.summary() == summary
    assert json.loads(json.dumps(restored.to_dict())) == state


def test_ledger_resumed_with_another_lead_reports_that_modes_total():
    """eval.flops_mode may change on resume: the summary then leads with the new mode's own
    books (tracked since the start), never relabels the old mode's total."""
    ledger = _posthoc_run("reference", flops.FlopsLedger)
    state = json.loads(json.dumps(ledger.to_dict()))
    resumed = flops.FlopsLedger.from_dict(state, G_LAYERS, D_LAYERS, lead="exact")
    assert resumed.summary()["lead"] == "exact"
    assert resumed.normalized() == _posthoc_run("exact").normalized()
    assert resumed.normalized() != ledger.normalized()


def test_exact_dynamic_uses_densities_in_force():
    # t=1..4 at 0.5, t=5..8 at 0.1 (updated at the end of t=4), t=9..10 at 0.3.
    m_g = BD * NC + 3 * BG
    expected = (4 * 3550 + 4 * 3150 + 2 * 3350) * m_g
    tot = _dynamic_run("exact").totals()
    assert tot["g"] == expected
    assert tot["g_dense"] == 10 * 4050 * m_g


@pytest.mark.parametrize("mode", flops.MODES)
def test_round_trip_continues_identically(mode):
    a = _accountant(mode, g_interval=2)
    b = None
    for t in range(1, 11):
        if t == 6:
            b = TrainingFlops.from_dict(json.loads(json.dumps(a.to_dict())), G_LAYERS, D_LAYERS)
        dens = {"a/kernel": 0.1 * (t % 4 + 1)} if t % 2 == 0 else None
        for acc in (a, b) if b else (a,):
            acc.iteration(t, dens, None, br_measured=t % 3 == 0, g_event=t % 2 == 0,
                          d_event=False)
    assert b.totals() == a.totals()
    assert b.to_dict() == a.to_dict()


def test_from_dict_rejects_other_layers():
    state = _accountant("exact").to_dict()
    with pytest.raises(ValueError, match="changed"):
        TrainingFlops.from_dict(state, G_LAYERS[:2], D_LAYERS)


def test_misuse_is_reported():
    with pytest.raises(ValueError, match="names"):
        _accountant("exact", g_dens={"nope/kernel": 0.5})
    with pytest.raises(ValueError, match="mode"):
        _accountant("approximate")
    with pytest.raises(ValueError, match="mode"):
        flops.FlopsLedger(G_LAYERS, D_LAYERS, mode="approximate")
    acc = _accountant("reference")
    with pytest.raises(ValueError, match="consecutive"):
        acc.iteration(2, None, None, br_measured=False, g_event=False, d_event=False)
    with pytest.raises(ValueError, match="interval"):
        acc.iteration(1, None, None, br_measured=False, g_event=True, d_event=False)
