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
from adapt_jax.config_base import ConfigError
from adapt_jax.training.checkpoint import Checkpointer, StorageError

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
    return subprocess.Popen(
        [sys.executable, "-m", "adapt_jax.main", "--config=configs/biggan_tiny.py",
         f"--workdir={workdir}", *CLI_OVERRIDES],
        cwd=ROOT, stdout=open(log, "a"), stderr=subprocess.STDOUT, text=True)


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
    assert "tensorboard --logdir" in out and "Stopped after" not in out
    _assert_same_run(reference_run, tmp_path)


@pytestmark_cli
def test_sigterm_checkpoints_exits_zero_and_resumes_exactly(tmp_path, reference_run):
    log = tmp_path / "log.txt"
    p = _cli(tmp_path, log)
    _wait_for_checkpoint(tmp_path, p, log)
    p.send_signal(signal.SIGTERM)
    out = _finish(p, log, timeout=300)
    assert "run the same command again to resume" in out
    assert "tensorboard --logdir" not in out  # nothing was finished yet
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
    # Without config.json nothing shows the checkpoints are this (other) config's: refused
    # before anything is built, and neither checkpoints nor the best one are touched.
    best = sorted(p.name for p in (tmp_path / "checkpoints_best").iterdir())
    (tmp_path / "config.json").unlink()
    other = tiny_config("static", **{"train.num_iters": 40, "model.g_ch": 16})
    with pytest.raises(ConfigError, match="has checkpoints but no config.json"):
        training.run(other, str(tmp_path))
    assert Checkpointer(str(ck_dir)).steps() == [10, 20, 30]
    assert sorted(p.name for p in (tmp_path / "checkpoints_best").iterdir()) == best


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


# -- the Checkpointer on its own: a small tree, no training ----------------------------------
def _tree(offset=0.0, rows=64):
    """Random float32 data does not compress, so its bytes are stored as written."""
    w = jax.random.normal(jax.random.PRNGKey(0), (rows, 64)) + offset
    return {"w": w, "b": jax.numpy.arange(3.0) + offset}


def _saved(directory, steps=(1, 2)):
    ckpt = Checkpointer(str(directory))
    for step in steps:
        ckpt.save(step, _tree(step), {"t": step})
    ckpt.close()
    return directory


def test_flipped_bytes_fail_the_digest_and_fall_back(tmp_path):
    """64 flipped bytes in a data file decode without any orbax error; the digest catches them
    and the previous step is restored (the damaged one moved aside)."""
    ck_dir = _saved(tmp_path / "ck")
    data = ck_dir / "2" / "state" / "ocdbt.process_0" / "d"
    biggest = max(data.iterdir(), key=lambda p: p.stat().st_size)
    raw = bytearray(biggest.read_bytes())
    middle = len(raw) // 2
    raw[middle:middle + 64] = bytes(b ^ 0xFF for b in raw[middle:middle + 64])
    biggest.write_bytes(bytes(raw))
    plain = ocp.CheckpointManager(str(ck_dir)).restore(
        2, args=ocp.args.Composite(state=ocp.args.StandardRestore()))["state"]
    assert not np.array_equal(np.asarray(plain["w"]), np.asarray(_tree(2)["w"]))  # silent
    step, state, host = Checkpointer(str(ck_dir)).restore_latest(_tree())
    assert (step, host) == (1, {"t": 1})
    np.testing.assert_array_equal(np.asarray(state["w"]), np.asarray(_tree(1)["w"]))
    assert (tmp_path / "ck_damaged" / "2").is_dir()


@pytest.mark.parametrize("target,fragment", [
    (_tree(rows=32), r"w is \(64, 64\) float32 there but \(32, 64\) float32"),
    ({**_tree(), "extra": jax.numpy.zeros(2)}, "extra is in this config's state but not there"),
])
def test_a_tree_of_another_config_is_refused_and_nothing_moves(tmp_path, target, fragment):
    """A stored tree that does not fit the current state means another config or code
    version, not damage: one error naming the difference, every step left where it was."""
    ck_dir = _saved(tmp_path / "ck")
    with pytest.raises(ConfigError, match=fragment + ".*use a new --workdir"):
        Checkpointer(str(ck_dir)).restore_latest(target)
    assert Checkpointer(str(ck_dir)).steps() == [1, 2]
    assert not (tmp_path / "ck_damaged").exists()


def test_best_checkpoint_is_replaced_only_by_a_better_score(tmp_path):
    """The best step of an earlier life of the run (say its regular checkpoints were damaged
    and training restarted) is not replaced by a worse score; a better one or the same step
    recomputed after a resume is."""
    best = Checkpointer(str(tmp_path / "best"), keep=1)
    assert best.save_best(30, _tree(), {"eval": {"best": 5.0}}, 5.0)
    best.close()
    best = Checkpointer(str(tmp_path / "best"), keep=1)  # a new process: score read from disk
    assert not best.save_best(40, _tree(), {"eval": {"best": 7.0}}, 7.0)
    assert best.save_best(30, _tree(1), {"eval": {"best": 5.0}}, 5.0)  # the same step again
    assert best.save_best(50, _tree(), {"eval": {"best": 4.0}}, 4.0)
    best.close()
    assert Checkpointer(str(tmp_path / "best")).steps() == [50]


def test_disk_full_while_saving_is_one_clear_error(tmp_path, monkeypatch):
    """Tensorstore reports a full disk as a RESOURCE_EXHAUSTED ValueError, at save or from the
    background thread at the next wait; both become StorageError (printed as one line)."""
    full = ValueError("RESOURCE_EXHAUSTED: Error writing \"w/0.0\" in OCDBT database: Failed "
                      "to write 379572 bytes to file 6: No space left on device "
                      "[os_error_code='28']")
    ckpt = Checkpointer(str(tmp_path / "ck"))
    ckpt.save(1, _tree(), {"t": 1})

    def fail(*args, **kwargs):
        raise full

    monkeypatch.setattr(ckpt.manager, "save", fail)
    with pytest.raises(StorageError, match=r"could not write checkpoint 2 in .*\(No space left "
                                           r"on device\); free disk space"):
        ckpt.save(2, _tree(), {"t": 2})
    monkeypatch.setattr(ckpt.manager, "wait_until_finished", fail)
    ckpt._pending = 3  # an async save in flight whose background write failed
    with pytest.raises(StorageError, match="could not write checkpoint 3"):
        ckpt.wait()
    monkeypatch.setattr(ckpt.manager, "wait_until_finished", lambda: None)
    monkeypatch.setattr(ckpt.manager, "save", lambda *a, **k: (_ for _ in ()).throw(
        ValueError("a bug, not the disk")))
    with pytest.raises(ValueError, match="a bug, not the disk"):  # not disguised as storage
        ckpt.save(4, _tree(), {"t": 4})
    monkeypatch.undo()
    assert Checkpointer(str(tmp_path / "ck")).steps() == [1]


def test_unwritable_checkpoint_directory_is_one_clear_error(tmp_path):
    """Checked before orbax starts its save threads (which would wait minutes for a step
    directory that cannot be created). Root writes through chmod, so the directory is
    replaced by a file, which fails for every user."""
    ckpt = Checkpointer(str(tmp_path / "ck"))
    shutil.rmtree(tmp_path / "ck")
    (tmp_path / "ck").write_text("")
    with pytest.raises(StorageError, match="could not write checkpoint 1 .*Not a directory"):
        ckpt.save(1, _tree(), {"t": 1})
    with pytest.raises(StorageError, match="could not write the checkpoint directory"):
        Checkpointer(str(tmp_path / "ck" / "sub"))


def test_read_only_checkpoint_directory_is_one_clear_error(tmp_path):
    ckpt = Checkpointer(str(tmp_path / "ck"))
    (tmp_path / "ck").chmod(0o500)
    try:
        if os.access(tmp_path / "ck", os.W_OK):
            pytest.skip("this user can write to read-only directories (root)")
        with pytest.raises(StorageError, match="Permission denied"):
            ckpt.save(1, _tree(), {"t": 1})
    finally:
        (tmp_path / "ck").chmod(0o700)


# -- device counts ----------------------------------------------------------------------------
DEVICES_SCRIPT = """
import sys, jax
sys.path.insert(0, 'tests')
from test_reliability import _save_or_restore
assert jax.device_count() == int(sys.argv[1]), jax.devices()
_save_or_restore(sys.argv[2], sys.argv[3])
"""


def _save_or_restore(workdir: str, mode: str) -> None:
    """'save': checkpoint a fresh trainer's state as step 7. 'restore': the trainer resumes it,
    and sample and export read it, on this process's devices."""
    from adapt_jax.tools import export, sample
    from adapt_jax.training.validation import check_workdir

    c = tiny_config("static")
    tr = training.Trainer(c, workdir)
    ckpt = Checkpointer(os.path.join(workdir, "checkpoints"))
    if mode == "save":
        check_workdir(c, workdir)
        ckpt.save(7, tr.state, tr.host_state_dict())
        ckpt.close()
        return
    step, state, _ = ckpt.restore_latest(tr.state)  # the digest proves the values are intact
    n = jax.device_count()
    assert step == 7 and all(len(x.sharding.device_set) == n for x in jax.tree.leaves(state))
    out = sample.write_samples(workdir, os.path.join(workdir, f"s{n}.npz"), num=4, batch_size=4)
    assert np.load(out)["x"].shape == (4, 16, 16, 3)
    assert export.export_run(workdir, os.path.join(workdir, f"g{n}.npz"))["step"] == 7


def _on_devices(n: int, workdir, mode: str) -> None:
    env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={n}")
    proc = subprocess.run([sys.executable, "-c", DEVICES_SCRIPT, str(n), str(workdir), mode],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.mark.slow
def test_checkpoint_of_4_devices_restores_on_2_and_1(tmp_path):
    """Restored arrays take the current mesh's shardings, not the saved ones."""
    _on_devices(4, tmp_path, "save")
    _on_devices(2, tmp_path, "restore")
    assert jax.device_count() == 1
    _save_or_restore(str(tmp_path), "restore")
