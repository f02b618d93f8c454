"""Whether a sweep's run directory already holds the requested run, a run to continue, or a
run of other settings that must not be relabelled (`python -m adapt_jax.sweep` run again)."""

from __future__ import annotations

import os

import ml_collections

# Fields that change how a run is logged or stored, not its results: a finished run with other
# values here is still the requested run.
COSMETIC = ("train.log_every", "train.sample_every", "train.ckpt_every", "train.keep_checkpoints",
            "train.distributed", "data.data_dir", "eval.cache_dir")


def settings_changes(config: ml_collections.ConfigDict, workdir: str) -> dict[str, tuple]:
    """{field: (stored, requested)} where the run already in `workdir` has other settings than
    `config` (cosmetic fields aside); empty for a new run. ConfigError (from `stored_config`)
    when the run there has checkpoints but no readable config.json."""
    from adapt_jax.training.validation import changed_fields, stored_config

    stored = stored_config(workdir) if os.path.isdir(workdir) else None
    if stored is None:
        return {}
    return {k: v for k, v in changed_fields(config, stored).items() if k not in COSMETIC}


def finished(workdir: str, config: ml_collections.ConfigDict | None = None) -> bool:
    """summary.json is there (and, given `config`, the run in `workdir` has its settings)."""
    if not os.path.isfile(os.path.join(workdir, "summary.json")):
        return False
    return config is None or not settings_changes(config, workdir)


def rerun_error(changes: dict[str, tuple]) -> str | None:
    """Why a run that exists with other settings cannot be continued (None: it can).

    Only a longer `train.num_iters` continues the same run (resuming extends it); any other
    change would report the old run under new settings, so it is refused: we never relabel
    results and never delete a run to re-train it."""
    if not changes:
        return None
    old, new = changes.get("train.num_iters", (0, 0))
    if set(changes) == {"train.num_iters"} and new > old:
        return None
    details = ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in list(changes.items())[:4])
    return (f"already run with other settings ({details}); use a new --workdir, or the "
            "settings it was run with")
