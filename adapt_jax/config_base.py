"""The one config schema every `configs/*.py` file starts from.

Config files live outside the package (flax-examples style) and call `get_base_config()` then
override fields, so every run has every field and `--config.x.y=...` overrides type-check.
"""

from __future__ import annotations

import ml_collections
from ml_collections import config_dict


class ConfigError(ValueError):
    """A config value (or workdir) that cannot work; every CLI prints it as one line, without
    a traceback."""


def get_base_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.seed = 0
    # dense | static | sdst_set | sdst_rigl | dda | dst_both | dst_both_set | adapt_relax |
    # adapt_strict | posthoc. dst_both(_set): DST on G and D, RigL (SET) regrowth in both.
    c.method = "adapt_relax"
    # Baselines only: 'balance' (d_D = d_G) or 'strong' (d_D = sparse.d_max).
    c.strategy = "balance"
    c.loss = "hinge"  # hinge | ns | wasserstein
    c.diffaug = ""  # comma-separated subset of color,translation,cutout; '' = off

    c.model = ml_collections.ConfigDict()
    c.model.name = "biggan"  # sngan32 | resnet48 | biggan32 | biggan64 | sngan | resnet | biggan
    c.model.resolution = 32
    c.model.z_dim = 128
    c.model.g_ch = 64  # base width of G (family-specific meaning)
    c.model.d_ch = 64
    c.model.num_classes = 0  # 0 = unconditional
    c.model.attention = False
    # Compute dtype: 'bfloat16' = mixed precision for GPU/TPU (params, masks and optimizer state
    # stay float32; logits and images are float32). On CPU it is slower than float32.
    c.model.dtype = "float32"
    c.model.conv_impl = "auto"  # auto | xla | cpu_auto | matmul_grad (auto: CPU forms on CPU)

    c.data = ml_collections.ConfigDict()
    c.data.source = "digits"  # digits | tfds | folder
    c.data.name = "cifar10"  # TFDS name when source == 'tfds'
    c.data.split = "train"
    c.data.data_dir = ""  # TFDS data_dir ('' = TFDS default)
    c.data.path = ""  # image folder when source == 'folder'
    c.data.flip = True
    c.data.use_labels = True  # False: train unconditionally even if the source has labels

    c.train = ml_collections.ConfigDict()
    c.train.num_iters = 100_000
    c.train.n_critic = 5
    c.train.batch_d = 64
    c.train.batch_g = 128
    c.train.lr_g = 2e-4
    c.train.lr_d = 2e-4
    c.train.b1 = 0.0
    c.train.b2 = 0.9
    c.train.ema = 0.999
    c.train.log_every = 100
    c.train.sample_every = 1000
    c.train.ckpt_every = 1000
    c.train.keep_checkpoints = 3
    c.train.nan_policy = "stop"  # stop | skip
    c.train.inject_nan_at = 0  # testing aid: poison iteration N's real batch with NaN (0 = never)
    # JAX's persistent compilation cache: a restarted run loads its executables instead of
    # compiling them again. '' = off; JAX's own JAX_COMPILATION_CACHE_DIR, when set, wins.
    c.train.compilation_cache = "~/.cache/adapt_jax/jax"
    c.train.distributed = False  # call jax.distributed.initialize() (multi-host TPU/GPU)
    # Where the processes of a distributed run meet; unset = JAX's auto-detection (Cloud TPU pod
    # slices, SLURM). Set all three elsewhere, e.g. CPU processes or a GPU cluster.
    c.train.coordinator_address = config_dict.placeholder(str)  # host:port of process 0
    c.train.num_processes = config_dict.placeholder(int)
    c.train.process_id = config_dict.placeholder(int)

    c.sparse = ml_collections.ConfigDict()
    c.sparse.density_g = 0.1
    # Initial D density of dda/adapt; unset = density_g (the paper's d_D = d_G), so overriding
    # density_g alone moves both.
    c.sparse.density_d = config_dict.placeholder(float)
    c.sparse.distribution = "erk"  # erk | er | uniform
    c.sparse.g_update_every = 500  # dT_G, iterations
    c.sparse.g_drop_fraction = 0.5
    c.sparse.g_drop_schedule = "cosine"  # cosine | linear | constant
    # rigl | set; ignored where the method fixes the rule (sdst_*, dst_both*: see methods.py)
    c.sparse.g_growth = "rigl"
    c.sparse.d_growth = "rigl"
    # G's drop/grow ranking: 'global' (one threshold over all layers, as the paper's code) lets
    # layer densities drift; 'layer' keeps each layer's initial (ERK) density.
    c.sparse.g_scope = "global"
    c.sparse.d_min = 0.05
    c.sparse.d_max = 1.0  # adapt_strict default 0.5 (set in configs)
    c.sparse.delta_d = 0.05
    c.sparse.d_adjust_every = 1000  # dT_D, iterations
    c.sparse.d_dst_drop_fraction = 0.5  # strict-mode D DST, cosine over the run
    # dst_both*: D's initial drop fraction γ, cosine over the run (paper Appendix E.2: 0.5).
    c.sparse.dst_both_d_drop_fraction = 0.5
    c.sparse.reset_moments_on_grow = False
    c.sparse.posthoc_finetune_fraction = 0.5

    c.balance = ml_collections.ConfigDict()
    c.balance.criterion = "br"  # br | ada_rt
    c.balance.br_every = 10
    c.balance.window = 1000  # iterations
    c.balance.lower = 0.45
    c.balance.upper = 0.55
    c.balance.reduce = "mean_of_ratios"  # mean_of_ratios | ratio_of_means
    # 'paper': the fixed band [lower, upper]. 'calibrated' (our extension, docs/design.md): D
    # trains at d_max until the first D check; the band is then centred on the BR measured in
    # that warm-up's later half, ± calibration_width x centre, and D moves to its initial
    # density. 'reference' (our extension): at each D check t the band is the BR that another
    # run of the same config with D at d_max logged at t, c(t), times (1 + reference_offset),
    # ± reference_width x c(t) (BR drifts through training); balance.reference is that run's
    # workdir or summary.json. Only density-controlled methods (dda, adapt_*) use a band.
    c.balance.band = "paper"
    c.balance.calibration_width = 0.25
    c.balance.reference = ""
    c.balance.reference_width = 0.25
    c.balance.reference_offset = 0.0

    c.eval = ml_collections.ConfigDict()
    c.eval.every = 5000  # also evaluated at the last iteration
    c.eval.cache_dir = ""  # offline-score classifier and reference statistics ('' = workdir)
    c.eval.num_samples = 10_000
    c.eval.batch_size = 100
    c.eval.inception_path = ""
    c.eval.fid_stats_path = ""
    c.eval.bn = "batch"  # batch | running
    c.eval.flops_mode = "reference"  # reference | exact
    return c


def set_method(c: ml_collections.ConfigDict, method: str, *, d_every_relax: int,
               d_every_strict: int, d_every_dda: int = 2000) -> ml_collections.ConfigDict:
    """Apply the paper's per-method settings (Appendix B) for `--config=configs/x.py:METHOD`:
    the method table's d_max and band, and the config's dT_D for the method's controller."""
    from adapt_jax.gan import methods  # the table owns which method needs what

    spec = methods.get_method(method)
    c.method = method
    if spec.paper_d_max is not None:
        c.sparse.d_max = spec.paper_d_max
    if spec.paper_band is not None:
        c.balance.lower, c.balance.upper = spec.paper_band
    c.sparse.d_adjust_every = {"strict": d_every_strict, "dda": d_every_dda}.get(
        spec.controller, d_every_relax)
    return c
