"""Config files (`PATH[:ARG]`) and `FIELD=VALUE` overrides, read the way `--config` and
`--config.FIELD=VALUE` read them, for tools that build many configs in one process."""

from __future__ import annotations

import importlib.util
import inspect
import os

import ml_collections

_CONFIG_MODULES: dict[str, object] = {}


def load_config_file(spec: str, method: str) -> ml_collections.ConfigDict:
    """`PATH[:ARG]` → get_config(ARG); a get_config that takes a method gets the run's method
    (so configs with per-method paper settings apply them)."""
    path, _, arg = spec.partition(":")
    if path not in _CONFIG_MODULES:
        module_spec = importlib.util.spec_from_file_location(
            f"_sweep_config_{len(_CONFIG_MODULES)}", path)
        if module_spec is None or not os.path.isfile(path):
            raise FileNotFoundError(f"--config={path} is not a config file")
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
        _CONFIG_MODULES[path] = module
    get_config = _CONFIG_MODULES[path].get_config
    if arg:
        return get_config(arg)
    return get_config(method) if inspect.signature(get_config).parameters else get_config()


def _parse_value(old: object, text: str, field_type: type | None = None) -> object:
    """Read `text` as the type of the field it replaces (as --config.x=... does); an unset
    placeholder field (None) is read as its declared type."""
    if old is None and field_type in (bool, int, float):
        old = field_type()
    if isinstance(old, bool):
        if text.lower() not in ("true", "false", "1", "0"):
            raise ValueError(f"expected true/false, got {text!r}")
        return text.lower() in ("true", "1")
    if isinstance(old, int):
        return int(float(text)) if any(ch in text for ch in ".eE") else int(text)
    if isinstance(old, float):
        return float(text)
    return text


def apply_override(config: ml_collections.ConfigDict, assignment: str) -> None:
    field, sep, text = assignment.partition("=")
    if not sep:
        raise ValueError(f"--set={assignment!r}: use FIELD=VALUE, e.g. train.num_iters=600")
    *parents, leaf = field.split(".")
    target = config
    for part in parents:
        target = target[part]
    if leaf not in target:
        raise ValueError(f"--set={assignment!r}: config has no field {field!r}")
    old = target[leaf]
    declared = target.get_ref(leaf).get_type() if old is None else None  # placeholder
    target[leaf] = _parse_value(old, text, declared)
