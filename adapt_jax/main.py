"""Train (or resume) one run.

    python -m adapt_jax.main --config=configs/biggan_tiny.py [--workdir=DIR] [--config.FIELD=VALUE]

Rerunning the same command resumes from the run's last complete checkpoint.

Commonly changed fields (one --config.FIELD=VALUE each):
  --config.method=adapt_relax      METHOD_NAMES
  --config.strategy=strong         baselines' D density: balance (= G's) or strong (d_max)
  --config.sparse.density_g=0.1    fraction of the generator's weights that are active
  --config.sparse.density_d=0.3    discriminator's starting density (default: density_g)
  --config.train.num_iters=500     training iterations
  --config.data.source=folder      digits (offline default), tfds or folder
  --config.data.path=DIR           your PNG/JPEG images; sub-folders are classes
  --config.model.num_classes=0     classes (default: from the data; 0 = unconditional)
  --config.eval.every=500          evaluate every N iterations (and at the end)
  --workdir=runs/NAME              checkpoints, samples, summary and TensorBoard events
                                   (default: runs/<config file name>)

Every field, with what it means: adapt_jax/config_base.py. Paper configs: configs/*.py.
"""

from __future__ import annotations

import logging as std_logging
import os
import re
import sys
import textwrap

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow, if anything imports it: quiet

from absl import app, flags, logging  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from adapt_jax.gan.methods import METHODS  # noqa: E402  (light: the method table only)

__doc__ = __doc__.replace("METHOD_NAMES", textwrap.fill(  # the table's methods, always current
    ", ".join(METHODS), width=92, initial_indent=" " * 35, subsequent_indent=" " * 35).lstrip())
# Libraries whose INFO lines are noise to a person watching a run (warnings still show).
_QUIET = ("orbax", os.path.join("jax", "_src"))


def _quiet_libraries(record) -> bool:
    return record.levelno >= std_logging.WARNING or not any(q in record.pathname for q in _QUIET)


def fail(message: str) -> None:
    """The CLI's answer to bad input: one line on stderr, exit code 2, no traceback."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def _innermost_text(err: BaseException) -> str:
    """ml_collections wraps a KeyError in an AttributeError: the text of the innermost one."""
    text: object = err
    while isinstance(text, BaseException) and text.args:
        text = text.args[0]
    return str(text)


def _unknown_field(err: BaseException, argv: list[str]) -> str | None:
    """One line for `--config.FIELD=...` naming no field (ml_collections raises KeyError or
    AttributeError with its own suggestion); None if `err` is something else."""
    name, _, rest = _innermost_text(err).partition("\n")
    name = name.strip("'\"")
    given = [a.split("=")[0] for a in argv
             if a.startswith("--config.") and name in a.split("=")[0].split(".")[1:]]
    if not given:
        return None
    close = re.search(r'Did you mean "([^"]+)"', rest)
    hint = f"did you mean {close.group(1)!r}? " if close else ""
    return (f"{given[0]}: the config has no field {name!r}; {hint}every field is in "
            f"adapt_jax/config_base.py")


def _config_argument(argv: list[str]) -> str | None:
    """The file named by --config (without a ':method' suffix), if given."""
    for i, arg in enumerate(argv):
        if arg.startswith("--config="):
            return arg.split("=", 1)[1].split(":", 1)[0]
        if arg == "--config" and i + 1 < len(argv):
            return argv[i + 1].split(":", 1)[0]
    return None


def parse_flags(argv: list[str]) -> list[str]:
    """absl's flag parsing with one-line errors for bad flags, config paths and fields; an
    error raised inside a config file keeps its traceback (it points at the line)."""
    path = _config_argument(argv)
    if path is not None and not os.path.isfile(path):  # ml_collections: a traceback, later
        fail(f"--config={path}: no such file (from {os.getcwd()}); config files are in "
             f"configs/, e.g. --config=configs/biggan_tiny.py")
    try:
        return flags.FLAGS(argv)
    except (flags.Error, KeyError, AttributeError) as err:
        if isinstance(err, flags.Error):
            text = str(err).splitlines()[0]
            if "--config must have a value" in text:
                text = "--config is required, e.g. --config=configs/biggan_tiny.py (see --help)"
            fail(text)
        unknown = _unknown_field(err, argv)
        if unknown is None:
            raise
        fail(unknown)
    return []  # unreachable: fail() exits


def resolve_workdir(workdir: str | None, config_filename: str) -> str:
    """Absolute run directory (`~` expanded; default runs/<config name>). Nothing is created
    here (a config error must not leave an empty run behind), but a path that can never be a
    directory is refused now, in one line, rather than by a traceback later."""
    if not workdir:
        name = os.path.splitext(os.path.basename(config_filename.split(":", 1)[0]))[0]
        workdir = os.path.join("runs", name)
    path = os.path.abspath(os.path.expanduser(workdir))
    existing = path
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if existing == path and not os.path.isdir(path):
        fail(f"--workdir={workdir} is a file; give a directory (it is created if missing)")
    if not os.path.isdir(existing):
        fail(f"--workdir={workdir} cannot be created: {existing} is a file")
    if not os.access(existing, os.W_OK):
        fail(f"--workdir={workdir}: {existing} is not writable; choose another directory")
    return path


def prepare(config, explicit_fields: dict) -> None:
    """Checks before anything compiles, and the data-dependent default: the class count
    follows the data unless --config.model.num_classes was given."""
    from adapt_jax import data
    from adapt_jax.config_base import ConfigError
    from adapt_jax.training.validation import validate_config

    validate_config(config)
    try:
        info = data.describe(config.data)
        data.check_batch(info.num_examples, config.train.batch_d, info.description)
    except (ValueError, FileNotFoundError) as e:
        raise ConfigError(f"config.data: {e}") from None
    note = data.resolve_num_classes(config, info, "model.num_classes" in explicit_fields)
    if note:
        logging.info("%s", note)


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    logging.get_absl_handler().addFilter(_quiet_libraries)
    config = flags.FLAGS.config
    workdir = resolve_workdir(flags.FLAGS.workdir, flags.FLAGS["config"].config_filename)
    from adapt_jax import training
    from adapt_jax.config_base import ConfigError
    from adapt_jax.training import console, distributed

    try:
        distributed.initialize(config.train)  # before any other JAX call
        prepare(config, config_flags.get_override_values(flags.FLAGS["config"]))
        summary = training.run(config, workdir)
    except (ConfigError, training.NonFiniteError) as e:
        fail(str(e))
    if summary is None:  # stopped by SIGTERM/SIGINT: the warning above says how to resume
        return
    print(console.final_table(summary))


def define_flags() -> None:
    """Only when run as a program, so importing this module defines no flags."""
    config_flags.DEFINE_config_file("config", None, "Path to a configs/*.py file.",
                                    lock_config=True)
    flags.DEFINE_string("workdir", None, "Run directory (default: runs/<config name>).")
    flags.mark_flags_as_required(["config"])


if __name__ == "__main__":
    define_flags()
    app.run(main, flags_parser=parse_flags)
