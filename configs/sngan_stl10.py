"""ResNet-48 SNGAN on STL-10 unlabelled 48x48 (paper Table 5, docs/design.md §13)."""

from adapt_jax.config_base import get_base_config, set_method


def get_config(method: str = "adapt_relax"):
    c = get_base_config()
    c.model.name = "resnet48"
    c.model.resolution = 48
    c.model.num_classes = 0
    c.data.source, c.data.name, c.data.split = "tfds", "stl10", "unlabelled"
    t = c.train
    t.num_iters, t.n_critic, t.batch_d, t.batch_g = 100_000, 5, 64, 128
    t.lr_g = t.lr_d = 2e-4
    t.b1, t.b2, t.ema = 0.0, 0.9, 0.999
    c.sparse.density_g = 0.1
    c.sparse.g_update_every = 1000
    c.sparse.delta_d = 0.025
    c.balance.lower, c.balance.upper = 0.45, 0.55
    c.eval.every, c.eval.num_samples = 5000, 50_000
    return set_method(c, method, d_every_relax=2000, d_every_strict=2000)
