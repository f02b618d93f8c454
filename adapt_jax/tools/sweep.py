"""Run a grid of methods × generator densities × seeds and aggregate it like the paper's tables.

    python -m adapt_jax.sweep --config=configs/biggan_tiny.py --methods=static,adapt_relax \
        --densities=0.1,0.3 --seeds=0,1,2 [--strategies=balance,strong] [--d_max=1.0,0.5] \
        [--workdir=runs/sweeps/NAME] [--parallel=N] [--set=train.num_iters=600 ...]

Each run trains in `WORKDIR/<method>[-<strategy>][-dmax<d>]-g<d_G>-s<seed>` through
`training.run`, so a finished run (summary.json present) is skipped and an interrupted one resumes
from its last checkpoint when the same command is given again. `--parallel=N` trains N runs at a
time in subprocesses (each `python -m adapt_jax.sweep ... --only=NAME`); the default trains them
one after another in this process. At the end `sweep_report` writes WORKDIR/results.md and plots.

Grid rules (the paper's Sec. 6.3): `--strategies` applies to the baselines only (static, sdst_*,
dst_both); `--d_max` values are the settings (1.0 = relaxed, < 1 = strict) and multiply only the
runs d_max affects (strategy 'strong' and the BR-controlled methods); adapt_relax runs only at
d_max = 1 and adapt_strict only at d_max < 1 (when no --d_max is given, adapt_strict with a
config d_max of 1 gets the paper's 0.5). D starts at d_G (`sparse.density_d = density_g`).
`--set` overrides are applied before the grid's own fields.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Sequence

import ml_collections

from adapt_jax.gan import methods
from adapt_jax.tools.config_files import apply_override, load_config_file
from adapt_jax.tools.sweep_state import finished, rerun_error, settings_changes


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """One point of the grid; None fields fall back to the config's value."""

    method: str
    strategy: str | None
    d_max: float | None
    density_g: float
    seed: int

    @property
    def name(self) -> str:
        parts = [self.method]
        if self.strategy:
            parts.append(self.strategy)
        if self.d_max is not None:
            parts.append(f"dmax{self.d_max:g}")
        parts += [f"g{self.density_g:g}", f"s{self.seed}"]
        return "-".join(parts)


def d_max_matters(method: str, strategy: str | None) -> bool:
    """d_max sets D's density for strategy 'strong' and caps the BR-controlled methods."""
    return strategy == "strong" or methods.get_method(method).d_mode == "controlled"


def _floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x]


def _strings(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m adapt_jax.sweep",
                                description=__doc__.splitlines()[0])
    p.add_argument("--config", required=True,
                   help="configs/*.py file, optionally PATH:ARG (ARG goes to get_config).")
    p.add_argument("--methods", type=_strings, required=True)
    p.add_argument("--densities", type=_floats, required=True, help="generator densities d_G")
    p.add_argument("--seeds", type=lambda s: [int(x) for x in _strings(s)], default=[0])
    p.add_argument("--strategies", type=_strings, default=["balance"],
                   help="baselines' D density: balance (d_D = d_G), strong (d_D = d_max)")
    p.add_argument("--d_max", type=_floats, default=[],
                   help="settings: 1.0 (relaxed), < 1 (strict); default: the config's")
    p.add_argument("--workdir", default="", help="default: runs/sweeps/<config name>")
    p.add_argument("--parallel", type=int, default=1, help="runs trained at a time")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="config override, repeatable, e.g. --set=train.num_iters=600")
    p.add_argument("--only", default="", help="train just this run (used by --parallel)")
    p.add_argument("--dry_run", action="store_true", help="list the runs and their state")
    p.add_argument("--no_report", action="store_true", help="skip results.md and plots")
    args = p.parse_args(list(argv))
    unknown = [m for m in args.methods if m not in methods.METHODS]
    bad_strategy = [s for s in args.strategies if s not in methods.STRATEGIES]
    if unknown or bad_strategy:
        p.error(f"unknown methods {unknown} / strategies {bad_strategy}; methods: "
                f"{sorted(methods.METHODS)}, strategies: {methods.STRATEGIES}")
    if not args.workdir:
        stem = os.path.splitext(os.path.basename(args.config.partition(":")[0]))[0]
        args.workdir = os.path.join("runs", "sweeps", stem)
    return args


def to_argv(args: argparse.Namespace) -> list[str]:
    """The flags that rebuild the same grid (for the --parallel worker processes)."""
    argv = [f"--config={args.config}", f"--methods={','.join(args.methods)}",
            f"--densities={','.join(f'{d:g}' for d in args.densities)}",
            f"--seeds={','.join(map(str, args.seeds))}",
            f"--strategies={','.join(args.strategies)}", f"--workdir={args.workdir}"]
    if args.d_max:
        argv.append(f"--d_max={','.join(f'{d:g}' for d in args.d_max)}")
    return argv + [f"--set={s}" for s in args.set]


# -- the grid --------------------------------------------------------------------------------
def build_grid(args: argparse.Namespace) -> list[RunSpec]:
    """Every run of the sweep, in a stable order, without duplicates."""
    runs: list[RunSpec] = []
    for method in args.methods:
        spec = methods.get_method(method)
        for strategy in args.strategies if spec.baseline else [None]:
            uses = d_max_matters(method, strategy)
            for d_max in args.d_max if (args.d_max and uses) else [None]:
                if d_max is not None and (
                        (spec.d_dst_at_max and d_max >= 1.0)
                        or (spec.controller == "relax" and d_max < 1.0)):
                    continue
                for density in args.densities:
                    for seed in args.seeds:
                        run = RunSpec(method, strategy, d_max, density, seed)
                        if run not in runs:
                            runs.append(run)
    return runs


def build_config(args: argparse.Namespace, run: RunSpec) -> ml_collections.ConfigDict:
    c = load_config_file(args.config, run.method)
    for assignment in args.set:
        apply_override(c, assignment)
    c.method, c.seed = run.method, run.seed
    c.sparse.density_g = c.sparse.density_d = run.density_g
    if run.strategy:
        c.strategy = run.strategy
    if run.d_max is not None:
        c.sparse.d_max = run.d_max
    elif (paper_d_max := methods.get_method(run.method).paper_d_max) and c.sparse.d_max >= 1.0:
        c.sparse.d_max = paper_d_max
    if not c.eval.cache_dir:  # one offline-score classifier for the whole sweep
        c.eval.cache_dir = os.path.abspath(os.path.join(args.workdir, "eval_cache"))
    return c


def run_record(run: RunSpec, config: ml_collections.ConfigDict) -> dict:
    """What the report needs to group a run, written to <run>/run.json."""
    _, d_d = methods.initial_densities(config)
    d_max = float(config.sparse.d_max)
    return {**dataclasses.asdict(run), "name": run.name, "config": _model_name(config),
            "setting": d_max if d_max_matters(run.method, run.strategy) else None,
            "d_max_effective": d_max, "density_d_initial": d_d,
            "band": [config.balance.lower, config.balance.upper],
            "num_iters": int(config.train.num_iters), "d_adjust_every":
                int(config.sparse.d_adjust_every)}


def _model_name(config: ml_collections.ConfigDict) -> str:
    m = config.model
    return f"{m.name}{m.resolution} on {config.data.source}"


# -- running ---------------------------------------------------------------------------------
def prepare(args: argparse.Namespace, runs: Sequence[RunSpec]) -> dict[str, object]:
    """Build and validate every config, and check each against a run already in its directory,
    before any training; then write each run.json."""
    from adapt_jax.config_base import ConfigError
    from adapt_jax.training.validation import validate_config

    configs, errors = {}, []
    for run in runs:
        try:
            config = build_config(args, run)
            validate_config(config)
            problem = rerun_error(settings_changes(config, os.path.join(args.workdir, run.name)))
        except (ConfigError, ValueError, KeyError, AttributeError) as e:
            problem = str(e)
        if problem:
            errors.append(f"{run.name}: {problem}")
            continue
        configs[run.name] = (run, config)
    if errors:
        raise SystemExit("invalid runs, nothing was trained:\n  " + "\n  ".join(errors))
    for name, (run, config) in configs.items():
        wd = os.path.join(args.workdir, name)
        os.makedirs(wd, exist_ok=True)
        with open(os.path.join(wd, "run.json"), "w") as f:
            json.dump(run_record(run, config), f, indent=2)
    return {name: config for name, (_, config) in configs.items()}


def train_in_process(config: ml_collections.ConfigDict, workdir: str, log_file: bool) -> str:
    """Train one run here; returns 'done', 'stopped' (signal) or 'failed' (see error.txt).

    The run's progress (absl INFO) also goes to <run>/log.txt when `log_file` (a --parallel
    worker's whole output already goes there)."""
    from absl import logging as absl_logging

    from adapt_jax import training

    absl_logging.set_verbosity(absl_logging.INFO)
    handler = logging.FileHandler(os.path.join(workdir, "log.txt")) if log_file \
        else logging.NullHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logging.getLogger().addHandler(handler)
    try:
        summary = training.run(config, workdir)
    except Exception:  # one bad run must not end the sweep; its traceback stays with it
        with open(os.path.join(workdir, "error.txt"), "w") as f:
            f.write(traceback.format_exc())
        return "failed"
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()
    return "stopped" if summary is None else "done"


def worker_command(args: argparse.Namespace, name: str) -> list[str]:
    """The --parallel worker: this module again, rebuilding the grid, training one run."""
    return [sys.executable, "-m", "adapt_jax.sweep", *to_argv(args), "--no_report",
            f"--only={name}"]


def train_in_subprocesses(args: argparse.Namespace, names: Sequence[str]) -> dict[str, str]:
    """Keep up to args.parallel workers busy; each trains one run and exits."""
    queue, running, status = list(names), {}, {}
    old_handler = None
    if threading.current_thread() is threading.main_thread():
        old_handler = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        while queue or running:
            while queue and len(running) < args.parallel:
                name = queue.pop(0)
                log = open(os.path.join(args.workdir, name, "log.txt"), "ab")
                running[name] = (subprocess.Popen(worker_command(args, name), stdout=log,
                                                  stderr=subprocess.STDOUT), log)
                print(f"[sweep] started {name}", flush=True)
            time.sleep(1.0)
            for name, (proc, log) in list(running.items()):
                if proc.poll() is not None:
                    log.close()
                    del running[name]
                    wd = os.path.join(args.workdir, name)
                    ok = proc.returncode == 0 and finished(wd)  # an old summary.json may stay
                    status[name] = "done" if ok else "failed"
                    print(f"[sweep] {status[name]} {name}", flush=True)
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: workers checkpoint and exit (training.run)
        for proc, log in running.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            proc.wait()
            log.close()
        raise
    finally:
        if old_handler is not None:
            signal.signal(signal.SIGTERM, old_handler)
    return status


def _raise_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def execute(args: argparse.Namespace, configs: dict[str, object]) -> dict[str, str]:
    todo = [n for n in configs if not finished(os.path.join(args.workdir, n), configs[n])]
    skipped = len(configs) - len(todo)
    print(f"[sweep] {len(configs)} runs: {skipped} finished (skipped), {len(todo)} to train",
          flush=True)
    if args.parallel > 1 and len(todo) > 1:
        return train_in_subprocesses(args, todo)
    status = {}
    for name in todo:
        print(f"[sweep] training {name}", flush=True)
        status[name] = train_in_process(configs[name], os.path.join(args.workdir, name),
                                        log_file=not args.only)
        print(f"[sweep] {status[name]} {name}", flush=True)
        if status[name] == "stopped":
            print("[sweep] stopped; run the same command again to resume.", flush=True)
            break
    return status


def main(argv: Sequence[str] | None = None) -> dict[str, str]:
    """Returns {run name: 'done' | 'failed' | 'stopped'} for the runs trained by this call."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    runs = build_grid(args)
    if args.only:
        runs = [r for r in runs if r.name == args.only]
        if not runs:
            raise SystemExit(f"--only={args.only} is not a run of this grid")
    if args.dry_run:
        for run in runs:
            done = finished(os.path.join(args.workdir, run.name))
            print(f"{'finished' if done else 'to train':9s} {run.name}")
        return {}
    os.makedirs(args.workdir, exist_ok=True)
    status = execute(args, prepare(args, runs))
    if not args.no_report:
        from adapt_jax.tools import sweep_report

        path = sweep_report.write_report(args.workdir)
        print(f"[sweep] report: {path}", flush=True)
    return status


def cli() -> None:
    """The command line (`python -m adapt_jax.sweep`)."""
    result = main()
    sys.exit(1 if "failed" in result.values() else 0)
