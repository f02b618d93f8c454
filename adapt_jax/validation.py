"""Config validation before anything compiles: one message per problem, naming field and fix."""

from __future__ import annotations

import json
import os

import jax
import ml_collections

from adapt_jax import methods, models
from adapt_jax.config_base import get_base_config


class ConfigError(ValueError):
    """A config value that cannot work; the CLI prints it without a traceback."""


CHOICES = {
    "loss": ("hinge", "ns", "wasserstein"),
    "model.dtype": tuple(models.DTYPES),
    "sparse.distribution": ("erk", "er", "uniform"),
    "sparse.g_drop_schedule": ("cosine", "linear", "constant"),
    "sparse.g_growth": ("rigl", "set"),
    "sparse.d_growth": ("rigl", "set"),
    "balance.criterion": ("br", "ada_rt"),
    "balance.reduce": ("mean_of_ratios", "ratio_of_means"),
    "balance.band": ("paper", "calibrated"),
    "data.source": ("digits", "tfds", "folder"),
    "eval.bn": ("batch", "running"),
    "eval.flops_mode": ("reference", "exact"),
    "train.nan_policy": ("stop", "skip"),
}
DIFFAUG_POLICIES = ("color", "translation", "cutout")
POSITIVE_INTS = ("train.num_iters", "train.n_critic", "train.batch_d", "train.batch_g",
                 "train.log_every", "train.sample_every", "train.ckpt_every",
                 "train.keep_checkpoints", "sparse.g_update_every", "sparse.d_adjust_every",
                 "balance.br_every", "balance.window", "eval.batch_size")
DENSITIES = ("sparse.density_g", "sparse.density_d", "sparse.d_min", "sparse.d_max")
# Fields a resumed run may change without being "a different run".
RESUMABLE_CHANGES = ("train.num_iters", "train.log_every", "train.sample_every",
                     "train.ckpt_every", "train.keep_checkpoints", "eval", "data.data_dir",
                     "train.distributed")


def _get(config: ml_collections.ConfigDict, field: str):
    value = config
    for part in field.split("."):
        value = value[part]
    return value


def validate_config(config: ml_collections.ConfigDict) -> None:
    """Raise ConfigError for the first invalid field (cheap checks only; no compilation)."""
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
    _check_balance(config)
    policies = [p for p in config.diffaug.split(",") if p]
    if any(p not in DIFFAUG_POLICIES for p in policies):
        raise ConfigError(f"config.diffaug={config.diffaug!r}: use a comma-separated subset "
                          f"of {DIFFAUG_POLICIES}, or '' for none.")
    _check_devices(config)
    _check_paths(config)
    _check_model(config)


def _check_balance(config: ml_collections.ConfigDict) -> None:
    s, b = config.sparse, config.balance
    spec = methods.get_method(config.method)
    if b.lower >= b.upper:
        raise ConfigError(f"config.balance.lower={b.lower} must be < config.balance.upper="
                          f"{b.upper} (the band [B-, B+]).")
    if b.band == "calibrated" and not b.calibration_width > 0:
        raise ConfigError(f"config.balance.calibration_width={b.calibration_width} must be > 0 "
                          "(the band's half-width relative to its centre).")
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
                          "adapt_jax.eval.convert_pytorch_fid` or set it to '' to use the "
                          "offline classifier score.")
    if e.fid_stats_path and not os.path.isfile(e.fid_stats_path):
        raise ConfigError(f"config.eval.fid_stats_path={e.fid_stats_path!r} does not exist; "
                          "compute it with `python -m adapt_jax.fid_stats` or set it to ''.")


def _check_model(config: ml_collections.ConfigDict) -> None:
    from adapt_jax import models

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


def _flatten(d: dict, prefix: str = "") -> dict[str, object]:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def check_workdir(config: ml_collections.ConfigDict, workdir: str) -> None:
    """Refuse to resume a workdir that holds a run of a different config; record ours."""
    path = os.path.join(workdir, "config.json")
    ours = json.loads(config.to_json_best_effort())
    if os.path.exists(path):
        with open(path) as f:
            theirs = json.load(f)
        a, b = _flatten(ours), _flatten(theirs)
        # A field added to the library since that run started counts as its default there.
        defaults = _flatten(json.loads(get_base_config().to_json_best_effort()))
        b = {**{k: v for k, v in defaults.items() if k in a and k not in b}, **b}
        changed = sorted(k for k in set(a) | set(b)
                         if a.get(k) != b.get(k)
                         and not any(k == f or k.startswith(f + ".") for f in RESUMABLE_CHANGES))
        if changed:
            details = ", ".join(f"{k}: {b.get(k)!r} -> {a.get(k)!r}" for k in changed[:5])
            raise ConfigError(f"--workdir={workdir} holds a run of a different config ({details});"
                              " use a new --workdir, or the same config to resume.")
    os.makedirs(workdir, exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(ours, f, indent=2, sort_keys=True)
    os.replace(tmp, path)
