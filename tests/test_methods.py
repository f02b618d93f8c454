"""The method table: growth rules the methods fix, and the paper's dst_both settings."""

import pytest

from adapt_jax.config_base import get_base_config
from adapt_jax.gan import methods


def config(method: str, g_growth: str = "rigl", d_growth: str = "rigl"):
    c = get_base_config()
    c.method = method
    c.sparse.g_growth, c.sparse.d_growth = g_growth, d_growth
    return c


@pytest.mark.parametrize("method, rule", [("dst_both_set", "set"), ("dst_both", "rigl")])
def test_dst_both_variants_fix_the_growth_of_both_nets(method, rule):
    """Table 7's SET and RigL rows are method names, whatever sparse.g/d_growth say."""
    other = "rigl" if rule == "set" else "set"
    assert methods.growth_rules(config(method, other, other)) == (rule, rule)
    spec = methods.get_method(method)
    assert spec.g_dst and spec.d_mode == "dst" and spec.baseline


def test_unfixed_rules_come_from_the_config():
    assert methods.growth_rules(config("adapt_strict", "set", "set")) == ("rigl", "set")
    assert methods.growth_rules(config("static", "set", "rigl")) == ("set", "rigl")
    assert methods.growth_rules(config("sdst_set", "rigl", "rigl")) == ("set", "rigl")


def test_dst_both_drops_half_of_d_initially_as_in_the_paper():
    # Appendix E.2 runs DST-bothGD with γ = 0.5 for D as well as G.
    s = get_base_config().sparse
    assert s.dst_both_d_drop_fraction == 0.5 == s.g_drop_fraction
