"""CLI: pytorch-fid's FID Inception state dict (.pth) -> our `.npz` weight file.

    python -m adapt_jax.evaluation.convert_pytorch_fid \
        --pth pt_inception-2015-12-05-6726825d.pth --out inception_fid.npz

Needs torch (imported only when reading a .pth); the layout mapping itself is numpy-only so it is
tested without torch. Module names are identical on both sides (`Mixed_6b.branch7x7_2.conv`), so
the mapping is: '.' -> '/', conv OIHW -> HWIO, fc (out, in) -> (in, out), BN weight/bias/running
statistics -> scale/bias/mean/var; `num_batches_tracked` is dropped.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

import numpy as np

from adapt_jax.evaluation import inception, storage

# torch suffix -> (flax collection, flax leaf)
_SUFFIXES = {
    "conv.weight": ("params", "conv/kernel"),
    "bn.weight": ("params", "bn/scale"),
    "bn.bias": ("params", "bn/bias"),
    "bn.running_mean": ("batch_stats", "bn/mean"),
    "bn.running_var": ("batch_stats", "bn/var"),
    "fc.weight": ("params", "fc/kernel"),
    "fc.bias": ("params", "fc/bias"),
}
_IGNORED_SUFFIX = "num_batches_tracked"


# flax leaf -> axis permutation taking the PyTorch layout to the flax one (OIHW -> HWIO).
_TO_FLAX_AXES = {"conv/kernel": (2, 3, 1, 0), "fc/kernel": (1, 0)}


def _permute(leaf: str, value: np.ndarray, inverse: bool = False) -> np.ndarray:
    axes = _TO_FLAX_AXES.get(leaf)
    if axes is None:
        return value
    return np.ascontiguousarray(value.transpose(np.argsort(axes) if inverse else axes))


def from_pytorch(state_dict: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """pytorch-fid state dict (tensors or arrays) -> flat flax variables, checked for shape."""
    flat: dict[str, np.ndarray] = {}
    for key, value in state_dict.items():
        if key.endswith(_IGNORED_SUFFIX):
            continue
        suffix = next((s for s in _SUFFIXES if key == s or key.endswith("." + s)), None)
        if suffix is None:
            raise ValueError(f"unexpected key {key!r}: not a pytorch-fid FID Inception state dict")
        collection, leaf = _SUFFIXES[suffix]
        prefix = key[: -len(suffix)].rstrip(".").replace(".", "/")
        name = "/".join(p for p in (collection, prefix, leaf) if p)
        array = np.asarray(value.numpy() if hasattr(value, "numpy") else value, np.float32)
        flat[name] = _permute(leaf, array)
    inception.check_flat_variables(flat, "the converted state dict")
    return flat


def to_pytorch(flat: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Inverse of `from_pytorch` (numpy arrays in PyTorch layout); for tests and cross-checks."""
    inverse = {f"{c}/{leaf}": s for s, (c, leaf) in _SUFFIXES.items()}
    state: dict[str, np.ndarray] = {}
    for name, value in flat.items():
        collection, rest = name.split("/", 1)
        # Leaves are two components ('conv/kernel', 'fc/bias'); the rest is the module path.
        parts = rest.split("/")
        prefix, leaf = parts[:-2], "/".join(parts[-2:])
        suffix = inverse[f"{collection}/{leaf}"]
        state[".".join([*prefix, suffix])] = _permute(leaf, np.asarray(value), inverse=True)
    return state


def convert_file(pth_path: str, out_path: str) -> None:
    """Reads the .pth with torch (CPU, tensors only) and writes the `.npz` weight file."""
    try:
        import torch
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise SystemExit("converting a .pth needs torch: pip install torch (CPU is enough)") from e
    state_dict = torch.load(pth_path, map_location="cpu", weights_only=True)
    storage.save_npz(out_path, from_pytorch(state_dict))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pth", required=True, help="pytorch-fid pt_inception-2015-12-05-*.pth")
    parser.add_argument("--out", required=True, help="output .npz (set eval.inception_path to it)")
    args = parser.parse_args(argv)
    convert_file(args.pth, args.out)
    print(f"wrote {args.out}; set --config.eval.inception_path={args.out}")


if __name__ == "__main__":
    main()
