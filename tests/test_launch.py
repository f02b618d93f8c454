"""launch/tpu_vm.sh in DRY_RUN mode: the gcloud commands it would run (no gcloud needed)."""

import os
import shutil
import subprocess

import pytest

SCRIPT = os.path.join(os.path.dirname(__file__), "..", "launch", "tpu_vm.sh")
pytestmark = pytest.mark.skipif(not shutil.which("bash"), reason="needs bash")


def _dry_run(*args, **env):
    out = subprocess.run(["bash", SCRIPT, *args], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "DRY_RUN": "1", "TPU_NAME": "t", **env})
    return out.returncode, out.stdout + out.stderr


def test_multi_host_runs_distributed_on_every_worker():
    rc, out = _dry_run("all", "--", "--config.method=static", NUM_WORKERS="4",
                       ACCELERATOR="v4-32", SPOT="1")
    assert rc == 0, out
    create, scp, install, train = [ln for ln in out.splitlines() if ln.startswith("+ gcloud")]
    assert "create t" in create and "--accelerator-type=v4-32" in create and "--spot" in create
    assert "--worker=all" in scp and "--worker=all" in install and "--worker=all" in train
    assert "jax\\[tpu\\]" in install and "pip\\ install\\ -q\\ -e" in install
    assert "adapt_jax.main" in train and "--config.method=static" in train
    assert "--config.train.distributed=True" in train


def test_single_host_is_not_distributed_and_bad_action_fails():
    rc, out = _dry_run("train", NUM_WORKERS="1")
    assert rc == 0 and "adapt_jax.main" in out and "distributed" not in out
    rc, out = _dry_run("bogus")
    assert rc == 2 and "unknown action" in out
