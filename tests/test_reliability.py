"""Kill -9, SIGTERM, damaged checkpoints and NaN losses never lose or corrupt a run."""

import os
import random
import shutil
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest
from conftest import EVAL_CACHE, tiny_config

from adapt_jax import training
from adapt_jax.checkpoint import Checkpointer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLI_OVERRIDES = [
    "--config.train.num_iters=30", "--config.train.ckpt_every=10", "--config.train.log_every=10",
    "--config.train.sample_every=30", "--config.model.g_ch=8", "--config.model.d_ch=8",
    "--config.model.z_dim=16", "--config.train.batch_d=16", "--config.train.batch_g=16",
    "--config.sparse.g_update_every=5", "--config.sparse.d_adjust_every=10",
    "--config.balance.br_every=2", "--config.balance.window=10", "--config.eval.every=1000",
    "--config.eval.num_samples=200", "--config.eval.batch_size=50",
    f"--config.eval.cache_dir={EVAL_CACHE}",
]
# Both CLI tests compare against one uninterrupted run: keep them on one xdist worker.
pytestmark_cli = pytest.mark.xdist_group("cli_runs")


def _cli(workdir, log):
    """The README's training command as a child process; output to a file (a full pipe blocks)."""
    env = dict(os.environ, JAX_COMPILATION_CACHE_DIR=os.path.join(ROOT, ".pytest_cache",
                                                                  "jax_cache"))
    return subprocess.Popen(
        [sys.executable, "-m", "adapt_jax.main", "--config=configs/biggan_tiny.py",
         f"--workdir={workdir}", *CLI_OVERRIDES],
        cwd=ROOT, env=env, stdout=open(log, "a"), stderr=subprocess.STDOUT, text=True)


def _finish(proc, log, timeout=900) -> str:
    rc = proc.wait(timeout=timeout)
    text = open(log).read()
    assert rc == 0, text[-5000:]
    return text


def _final_state(workdir):
    """The newest checkpoint as stored (no target tree needed)."""
    ckpt = Checkpointer(os.path.join(workdir, "checkpoints"))
    step = ckpt.steps()[-1]
    args = ocp.args.Composite(state=ocp.args.StandardRestore(), host=ocp.args.JsonRestore())
    return step, ckpt.manager.restore(step, args=args)


def _assert_same_run(ref, other):
    step_a, a = _final_state(ref)
    step_b, b = _final_state(other)
    assert step_a == step_b == 30
    la, lb = jax.tree.leaves(a["state"]), jax.tree.leaves(b["state"])
    assert len(la) == len(lb)
    for x, y in zip(la, lb, strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    for key in ("t", "data_position", "window", "controller", "flops", "history", "eval",
                "diagnostics"):
        assert a["host"].get(key) == b["host"].get(key), key


def _wait_for_checkpoint(workdir, proc, log, step=None, timeout=600):
    """Until a finished checkpoint (of `step`, or any) is there; fails if the run ends first."""
    ck = os.path.join(workdir, "checkpoints")
    start = time.time()
    while time.time() - start < timeout:
        done = [int(d) for d in os.listdir(ck) if d.isdigit()] if os.path.isdir(ck) else []
        if done and (step is None or step in done):
            return
        assert proc.poll() is None, open(log).read()[-5000:]
        time.sleep(0.2)
    raise AssertionError("no checkpoint appeared")


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory):
    ref = tmp_path_factory.mktemp("ref")
    _finish(_cli(ref, ref / "log.txt"), ref / "log.txt")
    return ref


@pytestmark_cli
@pytest.mark.parametrize("seed", [0, 1])
def test_kill9_then_resume_equals_uninterrupted(tmp_path, reference_run, seed):
    """SIGKILL at a random moment after the first checkpoint (mid-step, mid-save or between),
    then the same command again: the final state equals the uninterrupted run's, bit for bit."""
    log = tmp_path / "log.txt"
    p = _cli(tmp_path, log)
    # Seed 0 kills after the first of the run's three checkpoints, seed 1 after the second.
    _wait_for_checkpoint(tmp_path, p, log, step=10 * (seed + 1))
    time.sleep(random.Random(seed).uniform(0.0, 0.3))
    assert p.poll() is None, "the run finished before the kill: the test proved nothing"
    p.send_signal(signal.SIGKILL)
    p.wait()
    before = len(open(log).read())
    out = _finish(_cli(tmp_path, log), log)[before:]
    assert "Resumed" in out, out[-3000:]
    assert "Done." in out and "Stopped after" not in out
    _assert_same_run(reference_run, tmp_path)


@pytestmark_cli
def test_sigterm_checkpoints_exits_zero_and_resumes_exactly(tmp_path, reference_run):
    log = tmp_path / "log.txt"
    p = _cli(tmp_path, log)
    _wait_for_checkpoint(tmp_path, p, log)
    p.send_signal(signal.SIGTERM)
    out = _finish(p, log, timeout=300)
    assert "run the same command again to resume" in out
    assert "Done." not in out  # nothing was finished yet
    steps = Checkpointer(os.path.join(tmp_path, "checkpoints")).steps()
    assert steps and steps[-1] < 30
    _finish(_cli(tmp_path, log), log)
    _assert_same_run(reference_run, tmp_path)


def test_damaged_latest_checkpoint_falls_back_to_previous(tmp_path, caplog):
    c = tiny_config("static", **{"train.num_iters": 30, "train.ckpt_every": 10})
    training.run(c, str(tmp_path))
    ck_dir = tmp_path / "checkpoints"
    ckpt = Checkpointer(str(ck_dir))
    assert ckpt.steps() == [10, 20, 30]
    newest = [p for p in (ck_dir / "30" / "state").rglob("*") if p.is_file()
              and p.stat().st_size > 0]
    biggest = max(newest, key=lambda p: p.stat().st_size)
    with open(biggest, "r+b") as f:
        f.truncate(biggest.stat().st_size // 2)
    tr = training.Trainer(c, str(tmp_path))
    step, _, host = Checkpointer(str(ck_dir)).restore_latest(tr.state)
    assert step == 20 and host["t"] == 20
    assert any("30" in r.getMessage() and "damaged" in r.getMessage() for r in caplog.records)
    # The damaged step was moved aside, not deleted, and resuming trains through step 30 again
    # (orbax refuses to save over an existing step).
    assert (tmp_path / "checkpoints_damaged" / "30").is_dir()
    assert Checkpointer(str(ck_dir)).steps() == [10, 20]
    summary = training.run(c, str(tmp_path))
    assert summary["iterations"] == 30
    assert Checkpointer(str(ck_dir)).steps() == [10, 20, 30]


def test_checkpoint_missing_item_falls_back_to_previous(tmp_path, caplog):
    """A step whose host item never got written (a kill mid-save) is skipped like a damaged one."""
    c = tiny_config("static", **{"train.num_iters": 20, "train.ckpt_every": 10})
    training.run(c, str(tmp_path))
    ck_dir = tmp_path / "checkpoints"
    shutil.rmtree(ck_dir / "20" / "host")
    tr = training.Trainer(c, str(tmp_path))
    step, _, host = Checkpointer(str(ck_dir)).restore_latest(tr.state)
    assert step == 10 and host["t"] == 10
    assert (tmp_path / "checkpoints_damaged" / "20").is_dir()


def test_nan_loss_stops_naming_iteration_and_keeps_last_good_checkpoint(tmp_path):
    c = tiny_config("static", **{"train.num_iters": 30, "train.ckpt_every": 10,
                                 "train.log_every": 5, "train.inject_nan_at": 15})
    with pytest.raises(training.NonFiniteError, match="iteration 15"):
        training.run(c, str(tmp_path))
    tr = training.Trainer(c, str(tmp_path))
    step, state, _ = Checkpointer(str(tmp_path / "checkpoints")).restore_latest(tr.state)
    assert step == 10
    assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(state.g.params))


def test_nan_policy_skip_keeps_training(tmp_path):
    c = tiny_config("static", **{"train.num_iters": 20, "train.inject_nan_at": 7,
                                 "train.nan_policy": "skip"})
    summary = training.run(c, str(tmp_path))
    assert summary["iterations"] == 20
    tr = training.Trainer(c, str(tmp_path))
    _, state, _ = Checkpointer(str(tmp_path / "checkpoints")).restore_latest(tr.state)
    assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(state.d.params))
