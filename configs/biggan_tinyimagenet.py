"""BigGAN-64 on TinyImageNet (200 classes) with DiffAugment (docs/design.md §13).

TFDS has no TinyImageNet builder of that name; point data.name at the prepared dataset your
TFDS data_dir holds (see README, "Datasets"), or use data.source='folder' on the extracted
`tiny-imagenet-200/train` directory (sub-folders = classes).
"""

from adapt_jax.config_base import get_base_config, set_method


def get_config(method: str = "adapt_relax"):
    c = get_base_config()
    c.model.name = "biggan64"
    c.model.resolution = 64
    c.model.num_classes = 200
    c.model.attention = True
    c.data.source, c.data.name, c.data.split = "folder", "", "train"
    c.diffaug = "color,translation,cutout"
    t = c.train
    t.num_iters, t.n_critic, t.batch_d, t.batch_g = 200_000, 1, 256, 256
    t.lr_g, t.lr_d = 1e-4, 4e-4
    t.b1, t.b2, t.ema = 0.0, 0.999, 0.9999
    c.sparse.density_g = 0.1
    c.sparse.g_update_every = 1000
    c.sparse.delta_d = 0.05
    c.balance.lower, c.balance.upper = 0.3, 0.4
    c.eval.every, c.eval.num_samples = 5000, 10_000
    return set_method(c, method, d_every_relax=10_000, d_every_strict=10_000)
