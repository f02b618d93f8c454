"""`python -m adapt_jax.export --workdir=RUN --out=g.npz`: the sparse EMA generator, compactly.

A generator at density d_G should cost about d_G of its dense bytes, so we ship only the active
weights: at d_G = 0.1 the file is 0.11 (sngan32, biggan32) to 0.16 (biggan64, whose CBN linears
are dense) of the float32 bytes of all G params.

File format (one compressed `.npz`, format version 1, no pickles):

- `manifest`: UTF-8 JSON as uint8. `model` (the run's `config.model`), `eval_bn`, `step`,
  and `leaves`: one entry per array of the `params` and non-param collections (BN running
  stats, spectral-norm u/sigma), in file order, with its key path, shape, dtype, `sparse`, and
  its `offset` / `count` in the values stream of its dtype.
- `values_<dtype>`: one stream per dtype. A dense leaf contributes all its entries, a masked
  leaf only its active ones, both in C order.
- `mask_bits`: the masks of all masked leaves, flattened in file order and bit-packed
  (`np.packbits`, big-endian bit order).

Why a bitmask: per active weight at d_G = 0.1 (ERK masks of sngan32 / biggan64, after deflate)
it costs 0.56 / 0.48 bytes, against 1.44 for int32 flat indices and 0.65 / 0.53 for uint16
gaps, next to the 4 bytes of the value itself; at d_G = 0.02 it is still on par with uint16 gaps
(1.12 vs 1.06) and needs none of their escape codes for gaps over 65535. One stream per kind
(not one npz member per leaf) keeps the ~200 header bytes of a member from dominating small
models.

`load(FILE)` needs only `adapt_jax.models` (and numpy / jax / flax): no trainer, optimizer state
or orbax.
"""

from __future__ import annotations

import json
import os
import sys
import zipfile
import zlib
from collections.abc import Iterator
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import traverse_util

from adapt_jax import models
from adapt_jax.models import sampling

FORMAT = "adapt_jax.sparse_generator"
VERSION = 1


class ExportError(ValueError):
    """An export file that cannot be read (corrupt, truncated, wrong format or version)."""


# -- writing ---------------------------------------------------------------------------------
def _leaves(params: Any, stats: dict, masks: Any) -> Iterator[tuple[str, tuple, Any, Any]]:
    """(collection, key path, array, mask or None) for every array G needs at inference."""
    flat_masks = traverse_util.flatten_dict(masks) if masks is not None else {}
    for path, value in traverse_util.flatten_dict(params).items():
        yield "params", path, value, flat_masks.get(path)
    for collection, tree in stats.items():
        for path, value in traverse_util.flatten_dict(tree).items():
            yield collection, path, value, None


def pack(params: Any, stats: dict, masks: Any) -> tuple[list[dict], dict[str, np.ndarray]]:
    """Params (+ masks) and stats → (manifest leaves, npz arrays) in the format above.

    Raises ExportError when a masked leaf is nonzero outside its mask: shipping only the active
    entries would then silently change the generator.
    """
    host_params, host_stats, host_masks = jax.device_get((params, stats, masks))
    streams: dict[str, list[np.ndarray]] = {}
    offsets: dict[str, int] = {}
    bits: list[np.ndarray] = []
    entries = []
    for collection, path, value, mask in _leaves(host_params, host_stats, host_masks):
        value = np.asarray(value)
        dtype = value.dtype.name
        if mask is not None:
            mask = np.asarray(mask, bool)
            if np.any(value[~mask] != 0):
                raise ExportError(f"{'/'.join(path)}: nonzero weights outside the mask; the "
                                  "generator is not exactly sparse and cannot be exported.")
            data = value[mask]
            bits.append(mask.reshape(-1))
        else:
            data = value.reshape(-1)
        entries.append({"collection": collection, "path": list(path), "shape": list(value.shape),
                        "dtype": dtype, "sparse": mask is not None,
                        "offset": offsets.get(dtype, 0), "count": int(data.size)})
        streams.setdefault(dtype, []).append(data)
        offsets[dtype] = offsets.get(dtype, 0) + int(data.size)
    flat_bits = np.concatenate(bits) if bits else np.zeros(0, bool)
    arrays = {f"values_{k}": np.concatenate(v) for k, v in streams.items()}
    arrays["mask_bits"] = np.packbits(flat_bits)
    return entries, arrays


def write(out: str, *, model_config: dict, eval_bn: str, params: Any, stats: dict, masks: Any,
          step: int = 0) -> int:
    """Write one export file (atomically: a killed export leaves no half file); returns bytes."""
    if eval_bn not in ("batch", "running"):
        raise ValueError(f"eval_bn={eval_bn!r}: use 'batch' or 'running'.")
    entries, arrays = pack(params, stats, masks)
    manifest = {"format": FORMAT, "version": VERSION, "model": model_config, "eval_bn": eval_bn,
                "step": int(step), "leaves": entries}
    blob = np.frombuffer(json.dumps(manifest).encode(), np.uint8)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    tmp = f"{out}.tmp.npz"
    np.savez_compressed(tmp, manifest=blob, **arrays)
    os.replace(tmp, out)
    return os.path.getsize(out)


def dense_param_bytes(params: Any) -> int:
    """float32 bytes of every param of G: what a dense checkpoint of the generator stores."""
    return 4 * sum(int(np.prod(x.shape)) for x in jax.tree.leaves(params))


def export_run(workdir: str, out: str, checkpoint: str = "latest") -> dict[str, Any]:
    """Export the EMA generator of a run's checkpoint; returns sizes for the report."""
    # orbax: the writer's dependency only
    from adapt_jax.tools.run_loading import load_generator, output_path

    out = output_path(out)
    snap = load_generator(workdir, checkpoint)
    size = write(out, model_config=snap.config.model.to_dict(), eval_bn=snap.config.eval.bn,
                 params=snap.params, stats=snap.stats, masks=snap.masks, step=snap.step)
    dense = dense_param_bytes(snap.params)
    return {"out": out, "step": snap.step, "bytes": size, "dense_g_param_bytes": dense,
            "ratio": size / dense}


# -- reading ---------------------------------------------------------------------------------
def _read(path: str) -> tuple[dict, dict[str, np.ndarray]]:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such export file (write one with "
                                "`python -m adapt_jax.export --workdir=RUN --out=FILE`).")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
        manifest = json.loads(arrays.pop("manifest").tobytes().decode()) \
            if "manifest" in arrays else None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as e:
        raise ExportError(f"{path} is not a readable adapt_jax export "
                          f"({type(e).__name__}: {e}).") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ExportError(f"{path} is not an adapt_jax generator export.")
    if manifest.get("version") != VERSION:
        raise ExportError(f"{path}: export format version {manifest.get('version')}; this "
                          f"adapt_jax reads version {VERSION}.")
    return manifest, arrays


def unpack(entries: list[dict], arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    """Inverse of `pack`: `{collection: nested dict}` (params included)."""
    maskable = sum(int(np.prod(e["shape"])) for e in entries if e["sparse"])
    bits = np.unpackbits(arrays["mask_bits"], count=maskable).astype(bool)
    flat: dict[str, dict[tuple, np.ndarray]] = {}
    bit = 0
    for e in entries:
        shape, size = tuple(e["shape"]), int(np.prod(e["shape"]))
        data = arrays[f"values_{e['dtype']}"][e["offset"]:e["offset"] + e["count"]]
        if data.size != e["count"]:
            raise ValueError(f"{'/'.join(e['path'])}: values stream too short")
        if e["sparse"]:
            mask = bits[bit:bit + size]
            bit += size
            if int(mask.sum()) != e["count"]:
                raise ValueError(f"{'/'.join(e['path'])}: mask and values disagree")
            value = np.zeros(size, data.dtype)
            value[mask] = data
        else:
            value = data
        flat.setdefault(e["collection"], {})[tuple(e["path"])] = value.reshape(shape)
    return {c: traverse_util.unflatten_dict(tree) for c, tree in flat.items()}


class SparseGenerator:
    """An exported generator: `gen(z, y=None)` → (N, H, W, 3) float32 images in [-1, 1].

    With eval_bn 'batch' (the reference's eval mode) BatchNorm normalises with the statistics of
    the batch it is given, as in training and evaluation, so an image depends on its batch.
    """

    def __init__(self, manifest: dict, variables: dict[str, Any]):
        self.model_config: dict = manifest["model"]
        self.eval_bn: str = manifest["eval_bn"]
        self.step: int = manifest["step"]
        gan = models.create(ml_collections.ConfigDict(self.model_config))
        self.z_dim, self.num_classes, self.resolution = gan.z_dim, gan.num_classes, gan.resolution
        variables = jax.tree.map(jnp.asarray, variables)
        self.params = variables.pop("params")
        self.stats = variables
        self._generate = sampling.make_generate_fn(gan.generator, self.eval_bn == "batch")

    def __call__(self, z: Any, y: Any = None) -> jax.Array:
        z = jnp.asarray(z, jnp.float32)
        if z.ndim != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"z must have shape (N, {self.z_dim}); got {z.shape}.")
        if self.num_classes == 0:
            if y is not None:
                raise ValueError("unconditional generator: pass no labels.")
        else:
            if y is None:
                raise ValueError(f"conditional generator: pass labels y, (N,) ints in "
                                 f"[0, {self.num_classes}).")
            y = np.asarray(y)
            if y.shape != z.shape[:1] or y.min() < 0 or y.max() >= self.num_classes:
                raise ValueError(f"y must be (N,) = {z.shape[:1]} ints in "
                                 f"[0, {self.num_classes}); got shape {y.shape}.")
            y = jnp.asarray(y, jnp.int32)
        return self._generate(self.params, self.stats, z, y)


def load(path: str) -> SparseGenerator:
    """The generator in an export file; FileNotFoundError / ExportError say what is wrong."""
    manifest, arrays = _read(path)
    try:
        variables = unpack(manifest["leaves"], arrays)
    except (KeyError, TypeError, ValueError, IndexError) as e:
        raise ExportError(f"{path} is damaged ({type(e).__name__}: {e}).") from None
    if "params" not in variables:
        raise ExportError(f"{path} holds no generator parameters.")
    return SparseGenerator(manifest, variables)


# -- CLI -------------------------------------------------------------------------------------
def _define_flags() -> None:
    """Flags only when run as a script: importing this module next to `adapt_jax.tools.sample`
    must not define `--workdir` twice."""
    from absl import flags

    flags.DEFINE_string("workdir", None, "Run directory written by adapt_jax.main.")
    flags.DEFINE_string("checkpoint", "latest", "'latest', 'best' or a step number.")
    flags.DEFINE_string("out", None, "Output file (.npz).")
    flags.mark_flags_as_required(["workdir", "out"])


def main(argv: list[str]) -> None:
    from absl import flags

    del argv
    f = flags.FLAGS
    try:
        info = export_run(f.workdir, f.out, f.checkpoint)
    except (FileNotFoundError, ValueError) as e:  # bad flags or workdir: one line, no traceback
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    print(f"Wrote {info['out']} (step {info['step']}): {info['bytes']} bytes = "
          f"{info['ratio']:.3f} x the dense G params ({info['dense_g_param_bytes']} bytes "
          "float32).")


def cli() -> None:
    """The command line (`python -m adapt_jax.export`)."""
    from absl import app

    _define_flags()
    app.run(main)
