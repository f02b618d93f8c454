"""`python -m adapt_jax.sample --workdir=RUN --num=50000 --out=samples.npz`

Images from a run's EMA generator as PNG files or one uint8 .npz (key 'x', shape (N, H, W, 3)),
the format TTUR, pytorch-fid and clean-fid read, so users can score our runs with their tools.

Flags: --checkpoint=latest|best|STEP, --labels=''|cycle|K (conditional models), --seed,
--batch_size. The same seed and batch size give the same images; with eval.bn='batch' (the
reference) BatchNorm normalises each batch with its own statistics, so an image also depends on
the batch it was drawn in.
"""

from __future__ import annotations

import os
import sys

import jax
import numpy as np

from adapt_jax.models import sampling
from adapt_jax.tools.run_loading import load_generator, output_path
from adapt_jax.training import report


def parse_labels(spec: str, num: int, num_classes: int) -> np.ndarray | None:
    """'' → None (uniform random classes), 'cycle' → 0, 1, 2, ..., 'K' → all K."""
    if num_classes == 0:
        if spec:
            raise ValueError(f"--labels={spec!r}: the model is unconditional; omit --labels.")
        return None
    if spec == "":
        return None
    if spec == "cycle":
        return np.arange(num) % num_classes
    if spec.isdigit() and int(spec) < num_classes:
        return np.full(num, int(spec))
    raise ValueError(f"--labels={spec!r}: use '', 'cycle' or a class id in [0, {num_classes}).")


def _batch_size(requested: int, num: int) -> int:
    """A multiple of the device count (it shards evenly), no larger than needed for `num`."""
    n_dev = jax.device_count()
    wanted = min(requested, -(-num // n_dev) * n_dev)
    return max(n_dev, wanted - wanted % n_dev)


def write_samples(workdir: str, out: str, num: int, checkpoint: str = "latest",
                  labels: str = "", seed: int = 0, batch_size: int = 500) -> str:
    """Write `num` images to `out` (.npz file or PNG directory); returns `out`."""
    if num <= 0 or batch_size <= 0:
        raise ValueError(f"--num={num} and --batch_size={batch_size} must be positive.")
    given, out = out, output_path(out)
    if os.path.isfile(out) and not out.endswith(".npz"):
        raise ValueError(f"--out={given} is a file: give a directory (PNGs) or a FILE.npz.")
    snap = load_generator(workdir, checkpoint)
    gan = snap.model
    y = parse_labels(labels, num, gan.num_classes)
    mesh = jax.make_mesh((jax.device_count(),), ("data",),
                         axis_types=(jax.sharding.AxisType.Auto,))
    fn = sampling.make_generate_fn(gan.generator, snap.config.eval.bn == "batch")
    batches = sampling.sample_batches(
        fn, snap.params, snap.stats, z_dim=gan.z_dim, num_classes=gan.num_classes,
        key=jax.random.PRNGKey(seed), num=num, batch_size=_batch_size(batch_size, num),
        labels=y, mesh=mesh)
    if out.endswith(".npz"):
        images = np.concatenate(list(_progress(batches, num)))
        tmp = f"{out}.tmp.npz"  # write-then-rename: a killed job leaves no truncated file
        np.savez(tmp, x=images)
        os.replace(tmp, out)
        return out
    os.makedirs(out, exist_ok=True)
    i = 0
    for batch in _progress(batches, num):
        for img in batch:
            report.save_png(os.path.join(out, f"{i:06d}.png"), img)
            i += 1
    return out


def _progress(batches, num: int):
    done = 0
    for b in batches:
        done += len(b)
        print(f"\rsampled {done}/{num}", end="", flush=True)
        yield b
    print()


def _define_flags() -> None:
    """Flags only when run as a script: importing this module next to `adapt_jax.tools.export`
    must not define `--workdir` twice (absl raises DuplicateFlagError)."""
    from absl import flags

    flags.DEFINE_string("workdir", None, "Run directory written by adapt_jax.main.")
    flags.DEFINE_string("checkpoint", "latest", "'latest', 'best' or a step number.")
    flags.DEFINE_integer("num", 50_000, "Number of images.")
    flags.DEFINE_string("out", None, "A directory (PNG files) or a FILE.npz.")
    flags.DEFINE_string("labels", "", "Conditional models: '' = uniform random classes, "
                        "'cycle' = 0,1,2,..., or one class id for all images.")
    flags.DEFINE_integer("seed", 0, "Sampling seed; the same seed gives the same images.")
    flags.DEFINE_integer("batch_size", 500, "Images per batch (all devices together).")
    flags.mark_flags_as_required(["workdir", "out"])


def main(argv: list[str]) -> None:
    from absl import flags

    del argv
    f = flags.FLAGS
    try:
        out = write_samples(f.workdir, f.out, f.num, f.checkpoint, f.labels, f.seed,
                            f.batch_size)
    except (FileNotFoundError, ValueError) as e:  # bad flags or workdir: one line, no traceback
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    print(f"Wrote {f.num} images to {out}")


def cli() -> None:
    """The command line (`python -m adapt_jax.sample`)."""
    from absl import app

    _define_flags()
    app.run(main)
