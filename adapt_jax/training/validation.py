"""Config validation before anything compiles: one message per problem, naming field and fix."""

from __future__ import annotations

import functools
import json
import math
import os

import jax
import ml_collections

from adapt_jax import data, models, paths, sparse
from adapt_jax.config_base import ConfigError, get_base_config
from adapt_jax.gan import balance, diffaug, losses, methods
from adapt_jax.rundir import RunDir
from adapt_jax.training import flops

CHOICES = {  # each list is its owner's, so a new choice needs no edit here
    "loss": losses.LOSSES,
    "model.dtype": tuple(models.DTYPES),
    "model.conv_impl": models.CONV_IMPLS,
    "sparse.distribution": tuple(sparse.DISTRIBUTIONS),
    "sparse.g_drop_schedule": sparse.SCHEDULES,
    "sparse.g_growth": sparse.GROW_MODES,
    "sparse.g_scope": sparse.SCOPES,
    "sparse.d_growth": sparse.GROW_MODES,
    "balance.criterion": balance.CRITERIA,
    "balance.reduce": balance.REDUCTIONS,
    "balance.band": balance.BANDS,
    "data.source": tuple(data.SOURCES),
    "eval.bn": ("batch", "running"),
    "eval.flops_mode": flops.MODES,
    "train.nan_policy": ("stop", "skip"),
}
DIFFAUG_POLICIES = diffaug.POLICIES
POSITIVE_INTS = ("train.num_iters", "train.n_critic", "train.batch_d", "train.batch_g",
                 "train.log_every", "train.sample_every", "train.ckpt_every",
                 "train.keep_checkpoints", "sparse.g_update_every", "sparse.d_adjust_every",
                 "balance.br_every", "balance.window", "eval.batch_size", "eval.every",
                 "model.z_dim", "model.g_ch", "model.d_ch")
DENSITIES = ("sparse.density_g", "sparse.density_d", "sparse.d_min", "sparse.d_max")
# field: (low, high, high included, why). Lows are included.
RANGES = {
    "train.ema": (0.0, 1.0, False, "the EMA decay; 1 would never move the EMA generator"),
    "train.b1": (0.0, 1.0, False, "Adam's beta1"),
    "train.b2": (0.0, 1.0, False, "Adam's beta2"),
    "sparse.g_drop_fraction": (0.0, 1.0, True, "a fraction of G's active weights"),
    "sparse.d_dst_drop_fraction": (0.0, 1.0, True, "a fraction of D's active weights"),
    "sparse.dst_both_d_drop_fraction": (0.0, 1.0, True, "a fraction of D's active weights"),
    "sparse.posthoc_finetune_fraction": (0.0, math.inf, False, "a fraction of num_iters"),
    "train.lr_g": (0.0, math.inf, False, "a learning rate"),
    "train.lr_d": (0.0, math.inf, False, "a learning rate"),
    "train.inject_nan_at": (0, math.inf, False, "an iteration (0 = never)"),
    "model.num_classes": (0, math.inf, False, "a class count (0 = unconditional)"),
}
# Fewest samples the Frechet distance can use: it needs a covariance (n - 1 > 0).
MIN_EVAL_SAMPLES = 2
# Fields only a density-controlled D reads: for other methods they never make a different run.
BAND_FIELDS = ("balance.band", "balance.lower", "balance.upper", "balance.calibration_width",
               "balance.reference", "balance.reference_width", "balance.reference_offset")
# Fields a resumed run may change without being "a different run".
RESUMABLE_CHANGES = ("train.num_iters", "train.log_every", "train.sample_every",
                     "train.ckpt_every", "train.keep_checkpoints", "eval", "data.data_dir",
                     "train.distributed", "train.coordinator_address", "train.num_processes",
                     "train.process_id", "model.conv_impl", "balance.reference",
                     "train.compilation_cache")


def _get(config: ml_collections.ConfigDict, field: str):
    value = config
    for part in field.split("."):
        value = value[part]
    return value


def validate_config(config: ml_collections.ConfigDict) -> None:
    """Raise ConfigError for the first invalid field (cheap checks only; no compilation)."""
    check_values(config)
    _check_devices(config)
    _check_paths(config)
    check_model(config)
    _check_active_weights(config)


def check_values(config: ml_collections.ConfigDict) -> None:
    """The checks that need neither devices, files nor the model (also used by `inspect`)."""
    try:
        methods.get_method(config.method)
        methods.initial_densities(config)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    for field, choices in CHOICES.items():
        if _get(config, field) not in choices:
            raise ConfigError(f"config.{field}={_get(config, field)!r} is unknown; "
                              f"choose one of {choices}.")
    for field in POSITIVE_INTS:
        if _get(config, field) <= 0:
            raise ConfigError(f"config.{field}={_get(config, field)} must be > 0.")
    for field in DENSITIES:
        v = _get(config, field)
        if v is None and field == "sparse.density_d":  # unset: D starts at density_g
            continue
        if not 0.0 < v <= 1.0:
            raise ConfigError(f"config.{field}={v} is outside (0, 1]; densities are fractions "
                              "of active weights, e.g. 0.1 for 10%.")
    for field, (low, high, high_included, what) in RANGES.items():
        v = _get(config, field)
        if not (low <= v <= high if high_included else low <= v < high):
            interval = f"[{low:g}, {high:g}{']' if high_included else ')'}"
            raise ConfigError(f"config.{field}={v} is outside {interval}: it is {what}.")
    need, why = MIN_EVAL_SAMPLES, "a covariance"
    if config.eval.inception_path:  # the Inception Score too, over IS_SPLITS chunks
        from adapt_jax.evaluation.evaluator import IS_SPLITS

        need, why = max(need, IS_SPLITS), f"a covariance and {IS_SPLITS} Inception Score splits"
    if config.eval.num_samples < need:
        raise ConfigError(f"config.eval.num_samples={config.eval.num_samples}: the score needs "
                          f"at least {need} samples ({why}); use thousands for a meaningful "
                          "score.")
    _check_balance(config)
    policies = [p for p in config.diffaug.split(",") if p]
    if any(p not in DIFFAUG_POLICIES for p in policies):
        raise ConfigError(f"config.diffaug={config.diffaug!r}: use a comma-separated subset "
                          f"of {DIFFAUG_POLICIES}, or '' for none.")


def _check_reference(b: ml_collections.ConfigDict) -> None:
    """The reference run must be readable now, not at the first D check."""
    if not b.reference_width > 0:
        raise ConfigError(f"config.balance.reference_width={b.reference_width} must be > 0 "
                          "(the band's half-width relative to the reference's BR).")
    if not b.reference_offset > -1:
        raise ConfigError(f"config.balance.reference_offset={b.reference_offset} must be > -1 "
                          "(the band's centre is the reference's BR x (1 + offset)).")
    if not b.reference:
        raise ConfigError("config.balance.band='reference' needs config.balance.reference: the "
                          "workdir (or summary.json) of a finished run of this config.")
    try:
        balance.load_reference_band(b.reference, b.reference_width, b.reference_offset)
    except (OSError, KeyError, TypeError, ValueError) as e:
        raise ConfigError(f"config.balance.reference={b.reference!r} is not a usable finished "
                          f"run ({type(e).__name__}: {e}); point it at a run's workdir or "
                          "summary.json.") from None


def _check_balance(config: ml_collections.ConfigDict) -> None:
    s, b = config.sparse, config.balance
    spec = methods.get_method(config.method)
    if b.lower >= b.upper:
        raise ConfigError(f"config.balance.lower={b.lower} must be < config.balance.upper="
                          f"{b.upper} (the band [B-, B+]).")
    if b.band == "calibrated" and not b.calibration_width > 0:
        raise ConfigError(f"config.balance.calibration_width={b.calibration_width} must be > 0 "
                          "(the band's half-width relative to its centre).")
    if b.band == "reference":
        _check_reference(b)
    if s.delta_d <= 0 or s.delta_d > 1:
        raise ConfigError(f"config.sparse.delta_d={s.delta_d} must be in (0, 1].")
    if s.d_min > s.d_max:
        raise ConfigError(f"config.sparse.d_min={s.d_min} exceeds config.sparse.d_max="
                          f"{s.d_max}.")
    if spec.d_mode == "controlled":
        d_d = methods.initial_densities(config)[1]
        if not s.d_min <= d_d <= s.d_max:
            raise ConfigError(f"config.sparse.density_d={d_d} (unset: density_g) must lie in "
                              f"[d_min, d_max] = [{s.d_min}, {s.d_max}].")
        if s.density_g > s.d_max:
            raise ConfigError(f"config.sparse.density_g={s.density_g} exceeds "
                              f"config.sparse.d_max={s.d_max}; D may never be sparser than "
                              "allowed, raise d_max or lower density_g.")
    if spec.baseline and spec.d_sparse and config.strategy == "strong" and s.density_g > s.d_max:
        raise ConfigError(f"config.sparse.density_g={s.density_g} exceeds config.sparse.d_max="
                          f"{s.d_max}: the 'strong' strategy gives D d_max, which would make D "
                          "sparser than G; raise d_max or use strategy='balance'.")
    if spec.d_dst_at_max and s.d_max >= 1.0:
        raise ConfigError("config.method='adapt_strict' needs config.sparse.d_max < 1 "
                          "(the paper uses 0.5); use adapt_relax for d_max = 1.")
    if b.window < b.br_every:
        raise ConfigError(f"config.balance.window={b.window} is shorter than "
                          f"config.balance.br_every={b.br_every}: the window would never fill.")


def _check_devices(config: ml_collections.ConfigDict) -> None:
    n = jax.device_count()
    for field in ("train.batch_d", "train.batch_g", "eval.batch_size"):
        if _get(config, field) % n:
            raise ConfigError(f"config.{field}={_get(config, field)} is not divisible by the "
                              f"{n} devices; use a multiple of {n}.")


def _check_paths(config: ml_collections.ConfigDict) -> None:
    d, e = config.data, config.eval
    if d.source == "folder" and not (d.path and os.path.isdir(d.path)):
        raise ConfigError(f"config.data.path={d.path!r} is not a directory; point it at a "
                          "folder of PNG/JPEG images (sub-folders = classes).")
    if e.inception_path and not os.path.isfile(e.inception_path):
        raise ConfigError(f"config.eval.inception_path={e.inception_path!r} does not exist; "
                          "convert pytorch-fid's weights with `python -m "
                          "adapt_jax.evaluation.convert_pytorch_fid` or set it to '' to use the "
                          "offline classifier score.")
    if e.fid_stats_path and not os.path.isfile(e.fid_stats_path):
        raise ConfigError(f"config.eval.fid_stats_path={e.fid_stats_path!r} does not exist; "
                          "compute it with `python -m adapt_jax.fid_stats` or set it to ''.")


def check_model(config: ml_collections.ConfigDict) -> None:
    try:
        gan = models.create(config.model)
    except ValueError as e:
        raise ConfigError(f"config.model: {e}") from None
    if gan.resolution != config.model.resolution:
        raise ConfigError(f"config.model.resolution={config.model.resolution} but "
                          f"config.model.name={config.model.name!r} always produces "
                          f"{gan.resolution}x{gan.resolution} images (the data is resized to "
                          f"config.model.resolution); set config.model.resolution="
                          f"{gan.resolution}, or use a configurable family (sngan, resnet, "
                          "biggan).")


@functools.lru_cache(maxsize=8)
def _maskable_shapes(model_json: str) -> tuple[dict, dict]:
    """G's and D's maskable {layer: shape}, from an abstract init (no arrays, no compile)."""
    gan = models.create(ml_collections.ConfigDict(json.loads(model_json)))
    g_vars, d_vars = jax.eval_shape(gan.init, jax.random.key(0))
    return (sparse.maskable_shapes(g_vars["params"], gan.g_is_maskable),
            sparse.maskable_shapes(d_vars["params"], gan.d_is_maskable))


def _check_active_weights(config: ml_collections.ConfigDict) -> None:
    """A density so low that a layer gets no active weight trains a broken net and reports
    NaN balance ratios; name the layer and the smallest density that gives each layer one."""
    g_shapes, d_shapes = _maskable_shapes(config.model.to_json_best_effort())
    d_g, d_d = methods.initial_densities(config)
    field_d = "sparse.d_max" if methods.get_method(config.method).baseline \
        and config.strategy == "strong" else "sparse.density_d"
    for net, shapes, density, field in (("G", g_shapes, d_g, "sparse.density_g"),
                                        ("D", d_shapes, d_d, field_d)):
        if not shapes or density >= 1.0:
            continue
        counts = sparse.layer_counts(shapes, density, config.sparse.distribution)
        empty = [name for name, count in counts.items() if count == 0]
        if empty:
            p = sparse.layer_densities(shapes, density, config.sparse.distribution)
            need = max(density / (p[k] * math.prod(shapes[k])) for k in shapes if p[k] > 0)
            raise ConfigError(
                f"config.{field}={density:g} leaves {len(empty)} of {len(counts)} {net} layers "
                f"without any active weight (first: {empty[0]}); use at least about "
                f"{min(1.0, need):.2g}.")


def _flatten(d: dict, prefix: str = "") -> dict[str, object]:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def is_resumable_change(field: str) -> bool:
    """Whether a resumed run may change `field` (a dotted config path)."""
    return any(field == f or field.startswith(f + ".") for f in RESUMABLE_CHANGES)


def changed_fields(config: ml_collections.ConfigDict, stored: dict) -> dict[str, tuple]:
    """{dotted field: (stored value, value in `config`)} for every field that differs and that
    the run's method reads (the band steers only a density-controlled D)."""
    a, b = _flatten(json.loads(config.to_json_best_effort())), _flatten(stored)
    # A field added to the library since that run started counts as its default there.
    defaults = _flatten(json.loads(get_base_config().to_json_best_effort()))
    b = {**{k: v for k, v in defaults.items() if k in a and k not in b}, **b}
    unread = (() if methods.get_method(config.method).d_mode == "controlled"
              else BAND_FIELDS)
    return {k: (b.get(k), a.get(k)) for k in sorted(set(a) | set(b))
            if a.get(k) != b.get(k) and k not in unread}


def has_checkpoints(workdir: str) -> bool:
    """Whether a run already saved a checkpoint (regular or best) in `workdir`."""
    for sub in ("checkpoints", "checkpoints_best"):
        d = os.path.join(workdir, sub)
        if os.path.isdir(d) and any(name.isdigit() for name in os.listdir(d)):
            return True
    return False


def stored_config(workdir: str) -> dict | None:
    """The config.json of the run in `workdir`, None for a new run; ConfigError when it is
    missing or unreadable although the run has checkpoints (they could be another config's)."""
    path = os.path.join(workdir, "config.json")
    hint = ("each checkpoint keeps a copy under 'config' in checkpoints/<step>/host/metadata; "
            "put it back as config.json, or use a new --workdir")
    if not os.path.exists(path):
        if has_checkpoints(workdir):
            raise ConfigError(f"--workdir={workdir} has checkpoints but no config.json, so "
                              f"nothing shows they belong to this config; {hint}.")
        return None
    try:
        with open(path) as f:
            stored = json.load(f)
        if not isinstance(stored, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as e:
        raise ConfigError(f"--workdir={workdir}: config.json is unreadable ({type(e).__name__}: "
                          f"{e}); {hint}.") from None
    return stored


def check_workdir(config: ml_collections.ConfigDict, workdir: str) -> None:
    """Refuse to resume a workdir that holds a run of a different config; record ours."""
    if os.path.exists(workdir) and not os.path.isdir(workdir):
        raise ConfigError(f"--workdir={workdir} is a file; give a directory (new or a run's).")
    stored = stored_config(workdir)
    if stored is not None:
        changed = {k: v for k, v in changed_fields(config, stored).items()
                   if not is_resumable_change(k)}
        if changed:
            details = ", ".join(f"{k}: {old!r} -> {new!r}"
                                for k, (old, new) in list(changed.items())[:5])
            raise ConfigError(f"--workdir={workdir} holds a run of a different config ({details});"
                              " use a new --workdir, or the same config to resume.")
    if jax.process_index() != 0:  # one writer per run
        return
    try:
        paths.makedirs(workdir)
        paths.write_json(RunDir(workdir).config, json.loads(config.to_json_best_effort()))
    except OSError as e:
        raise ConfigError(f"--workdir={workdir} is not writable ({type(e).__name__}: "
                          f"{e.strerror or e}); use a writable directory.") from None
