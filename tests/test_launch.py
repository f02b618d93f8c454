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


def _commands(out: str) -> dict[str, str]:
    """The printed gcloud commands by step: create, copy, install, data, train."""
    lines = [ln for ln in out.splitlines() if ln.startswith("+ gcloud")]
    steps = {}
    for ln in lines:
        if " create " in ln:
            steps["create"] = ln
        elif " scp " in ln:
            steps["copy"] = ln
        elif "uv\\ venv" in ln:
            steps["install"] = ln
        elif "tfds\\ build" in ln:
            steps["data"] = ln
        elif "adapt_jax.main" in ln:
            steps["train"] = ln
    return steps


# (accelerator, runtime image per https://cloud.google.com/tpu/docs/runtimes, hosts > 1)
SLICES = [("v4-8", "tpu-ubuntu2204-base", False),
          ("v5litepod-16", "v2-alpha-tpuv5-lite", True),
          ("v6e-8", "v2-alpha-tpuv6e", False)]


@pytest.mark.parametrize("accelerator,runtime,multi_host", SLICES)
def test_each_accelerator_gets_its_image_python_311_data_and_a_bucket_workdir(
        accelerator, runtime, multi_host):
    rc, out = _dry_run("all", "--", "--config.method=static", ACCELERATOR=accelerator,
                       BUCKET="bkt", DATASET="cifar10", SPOT="1")
    assert rc == 0, out
    steps = _commands(out)
    assert set(steps) == {"create", "copy", "install", "data", "train"}, out
    assert f"--accelerator-type={accelerator}" in steps["create"]
    assert f"--version={runtime}" in steps["create"] and "--spot" in steps["create"]
    for step in ("copy", "install", "train"):
        assert "--worker=all" in steps[step]
    # A Python 3.11 environment on every worker; JAX for TPU and this checkout installed in it.
    install = steps["install"]
    assert "venv\\ --python\\ 3.11" in install and "jax\\[tpu\\]" in install
    assert "-e\\ ./adapt_jax" in install
    # A gs:// data_dir is prepared once, on worker 0, and the run reads it.
    assert "--worker=0" in steps["data"] and "--data_dir=gs://bkt/tensorflow_datasets" in (
        steps["data"])
    train = steps["train"]
    assert "adapt_venv/bin/python\\ -m\\ adapt_jax.main" in train
    assert "--workdir=gs://bkt/adapt_jax/runs/t" in train
    assert "--config.data.data_dir=gs://bkt/tensorflow_datasets" in train
    assert "--config.method=static" in train
    assert ("--config.train.distributed=True" in train) == multi_host


def test_local_defaults_and_warnings():
    rc, out = _dry_run("train", ACCELERATOR="v4-32")  # 4 hosts, no bucket
    assert rc == 0 and "--workdir=runs/t" in out and "distributed=True" in out
    assert "warning: WORKDIR=runs/t is local to each worker" in out
    rc, out = _dry_run("data")  # no DATASET: nothing to prepare, said so
    assert rc == 0 and "nothing to prepare" in out and "gcloud" not in out
    rc, out = _dry_run("data", DATASET="stl10", NUM_WORKERS="2")  # local data on every worker
    assert rc == 0 and "--worker=all" in out and "tensorflow_datasets" in out


def test_single_host_is_not_distributed_and_bad_input_fails():
    rc, out = _dry_run("train", ACCELERATOR="v5litepod-8")
    assert rc == 0 and "adapt_jax.main" in out and "distributed" not in out
    rc, out = _dry_run("bogus")
    assert rc == 2 and "unknown action" in out
    rc, out = _dry_run("create", ACCELERATOR="v9x-8")
    assert rc == 2 and "set RUNTIME" in out
