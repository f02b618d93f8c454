"""Kill -9, SIGTERM, damaged checkpoints and NaN losses never lose or corrupt a run."""

import os
import random
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest
from conftest import tiny_config

from adapt_jax import train
from adapt_jax.checkpoint import Checkpointer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLI_OVERRIDES = [
    "--config.train.num_iters=60", "--config.train.ckpt_every=10", "--config.train.log_every=10",
    "--config.train.sample_every=60", "--config.model.g_ch=8", "--config.model.d_ch=8",
    "--config.model.z_dim=16", "--config.train.batch_d=16", "--config.train.batch_g=16",
    "--config.sparse.g_update_every=5", "--config.sparse.d_adjust_every=10",
    "--config.balance.br_every=2", "--config.balance.window=10", "--config.eval.every=1000",
]


def _cli(workdir, *extra):
    env = dict(os.environ, JAX_COMPILATION_CACHE_DIR=os.path.join(ROOT, ".pytest_cache",
                                                                  "jax_cache"))
    return subprocess.Popen(
        [sys.executable, "-m", "adapt_jax.main", "--config=configs/biggan_tiny.py",
         f"--workdir={workdir}", *CLI_OVERRIDES, *extra],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _final_state(workdir):
    """The newest checkpoint as stored (no target tree needed)."""
    ckpt = Checkpointer(os.path.join(workdir, "checkpoints"))
    step = ckpt.steps()[-1]
    args = ocp.args.Composite(state=ocp.args.StandardRestore(), host=ocp.args.JsonRestore())
    return step, ckpt.manager.restore(step, args=args)


def _trees_equal(a, b) -> bool:
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    return len(la) == len(lb) and all(np.array_equal(np.asarray(x), np.asarray(y))
                                      for x, y in zip(la, lb, strict=True))


def _wait_for_checkpoint(workdir, proc, timeout=300):
    ck = os.path.join(workdir, "checkpoints")
    start = time.time()
    while time.time() - start < timeout:
        if os.path.isdir(ck) and any(d.isdigit() for d in os.listdir(ck)):
            return
        assert proc.poll() is None, proc.stdout.read()
        time.sleep(0.2)
    raise AssertionError("no checkpoint appeared")


@pytest.mark.parametrize("seed", [0, 1])
def test_kill9_then_resume_equals_uninterrupted(tmp_path, seed):
    ref = tmp_path / "ref"
    p = _cli(ref)
    assert p.wait(timeout=600) == 0, p.stdout.read()
    killed = tmp_path / "killed"
    p = _cli(killed)
    _wait_for_checkpoint(killed, p)
    time.sleep(random.Random(seed).uniform(0.0, 3.0))
    p.send_signal(signal.SIGKILL)
    p.wait()
    p = _cli(killed)
    assert p.wait(timeout=600) == 0, p.stdout.read()
    step_a, a = _final_state(ref)
    step_b, b = _final_state(killed)
    assert step_a == step_b == 60
    assert _trees_equal(a["state"], b["state"])
    assert a["host"]["controller"] == b["host"]["controller"]
    assert a["host"]["history"] == b["host"]["history"]


def test_sigterm_checkpoints_and_exits_zero(tmp_path):
    p = _cli(tmp_path)
    _wait_for_checkpoint(tmp_path, p)
    p.send_signal(signal.SIGTERM)
    out, _ = p.communicate(timeout=120)
    assert p.returncode == 0, out
    assert "run the same command again to resume" in out
    steps = Checkpointer(os.path.join(tmp_path, "checkpoints")).steps()
    assert steps and steps[-1] < 60
    p = _cli(tmp_path)
    assert p.wait(timeout=600) == 0
    assert Checkpointer(os.path.join(tmp_path, "checkpoints")).steps()[-1] == 60


def test_damaged_latest_checkpoint_falls_back_to_previous(tmp_path, caplog):
    c = tiny_config("static", **{"train.num_iters": 30, "train.ckpt_every": 10})
    train.run(c, str(tmp_path))
    ck_dir = tmp_path / "checkpoints"
    ckpt = Checkpointer(str(ck_dir))
    assert ckpt.steps() == [10, 20, 30]
    newest = [p for p in (ck_dir / "30" / "state").rglob("*") if p.is_file()
              and p.stat().st_size > 0]
    biggest = max(newest, key=lambda p: p.stat().st_size)
    with open(biggest, "r+b") as f:
        f.truncate(biggest.stat().st_size // 2)
    tr = train.Trainer(c, str(tmp_path))
    step, _, host = Checkpointer(str(ck_dir)).restore_latest(tr.state)
    assert step == 20 and host["t"] == 20
    assert any("30" in r.getMessage() and "damaged" in r.getMessage() for r in caplog.records)


def test_nan_loss_stops_naming_iteration_and_keeps_last_good_checkpoint(tmp_path):
    c = tiny_config("static", **{"train.num_iters": 30, "train.ckpt_every": 10,
                                 "train.log_every": 5, "train.inject_nan_at": 15})
    with pytest.raises(train.NonFiniteError, match="iteration 15"):
        train.run(c, str(tmp_path))
    tr = train.Trainer(c, str(tmp_path))
    step, state, _ = Checkpointer(str(tmp_path / "checkpoints")).restore_latest(tr.state)
    assert step == 10
    assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(state.g.params))


def test_nan_policy_skip_keeps_training(tmp_path):
    c = tiny_config("static", **{"train.num_iters": 20, "train.inject_nan_at": 7,
                                 "train.nan_policy": "skip"})
    summary = train.run(c, str(tmp_path))
    assert summary["iterations"] == 20
    tr = train.Trainer(c, str(tmp_path))
    _, state, _ = Checkpointer(str(tmp_path / "checkpoints")).restore_latest(tr.state)
    assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(state.d.params))
