"""JAX's multi-process mode on CPU: 2 processes x 2 simulated devices, joined over gloo.

Each test starts real processes (`jax.distributed.initialize` through
`adapt_jax.training.distributed`) that meet on a free local port, as the hosts of a TPU pod
slice do.
"""

import json
import os
import signal
import socket
import subprocess
import sys

import jax
import ml_collections
import numpy as np
import pytest
from conftest import EVAL_CACHE

from adapt_jax.config_base import ConfigError
from adapt_jax.models import sampling
from adapt_jax.training import distributed, preemption

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# A tiny conditional generator, shared by the processes and the in-test reference.
GENERATOR = """
import flax.linen as nn, jax, numpy as np
class G(nn.Module):
    @nn.compact
    def __call__(self, z, y, train):
        h = z + nn.Embed(3, 5)(y)
        return nn.tanh(nn.Dense(4 * 4 * 3)(h)).reshape(-1, 4, 4, 3)
def make():
    g = G()
    params = g.init(jax.random.PRNGKey(0), np.zeros((1, 5)), np.zeros((1,), np.int32),
                    train=False)['params']
    return g, params
"""

SAMPLE_AND_STOP = GENERATOR + """
import os, signal, sys, time, json
import ml_collections
from jax.sharding import NamedSharding, PartitionSpec as P
from adapt_jax.training import distributed, preemption
from adapt_jax.models import sampling
out, port, pid = sys.argv[1], sys.argv[2], int(sys.argv[3])
distributed.initialize(ml_collections.ConfigDict(dict(
    distributed=True, coordinator_address=f'localhost:{port}', num_processes=2, process_id=pid)))
stop = preemption.StopRequest()
mesh = jax.make_mesh((jax.device_count(),), ('data',), axis_types=(jax.sharding.AxisType.Auto,))
g, params = make()
fn = sampling.make_generate_fn(g, batch_stats=False)
common = dict(z_dim=5, num_classes=3, key=jax.random.PRNGKey(1), num=10, batch_size=6, mesh=mesh)
random_labels = sampling.sample(fn, params, {}, **common)
cycled = sampling.sample(fn, params, {}, labels=np.arange(10) % 3, **common)
np.savez(f'{out}/images_{pid}.npz', random_labels=random_labels, cycled=cycled)
total = jax.jit(lambda a: a.sum(), out_shardings=NamedSharding(mesh, P()))
x = sampling.to_mesh(np.arange(8.0), NamedSharding(mesh, P('data')))
stopped = None
for t in range(1, 200):
    float(total(x))  # a collective every iteration, as in training
    if pid == 1 and t == 3:
        os.kill(os.getpid(), signal.SIGTERM)  # the preemption notice reaches one host only
    if stop.should_stop(t):
        stopped = t
        break
    time.sleep(0.02)
stop.restore()
json.dump({'devices': jax.device_count(), 'processes': jax.process_count(),
           'synced': stop.synced, 'stopped': stopped}, open(f'{out}/result_{pid}.json', 'w'))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def cpu_env(devices: int) -> dict[str, str]:
    return dict(os.environ, JAX_PLATFORMS="cpu",
                XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}")


def run_together(cmds: list[list[str]], env: dict[str, str],
                 timeout: float) -> list[subprocess.CompletedProcess]:
    """Start every command at once (the processes of one group), wait for all, kill leftovers."""
    procs = [subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for cmd in cmds]
    results = []
    try:
        for p in procs:
            stdout, stderr = p.communicate(timeout=timeout)
            results.append(subprocess.CompletedProcess(p.args, p.returncode, stdout, stderr))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for i, r in enumerate(results):
        assert r.returncode == 0, f"process {i}:\n{r.stderr[-3000:]}"
    return results


def spawn(script: str, out, *, processes: int = 2, devices: int = 2, timeout: float = 240,
          args: tuple = ()) -> list[subprocess.CompletedProcess]:
    """Run `script` as `processes` JAX processes with `devices` CPU devices each."""
    port = free_port()
    cmds = [[sys.executable, "-c", script, str(out), str(port), str(i), *args]
            for i in range(processes)]
    return run_together(cmds, cpu_env(devices), timeout)


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory):
    out = tmp_path_factory.mktemp("multihost")
    spawn(SAMPLE_AND_STOP, out)
    return out


def test_every_process_gets_every_sampled_image(two_processes):
    """Batches of 6 on 4 devices (padded to 8, then cut), gathered from both processes: each
    process holds the same images as one process on one device."""
    namespace: dict = {}
    exec(GENERATOR, namespace)
    g, params = namespace["make"]()
    fn = sampling.make_generate_fn(g, batch_stats=False)
    common = dict(z_dim=5, num_classes=3, key=jax.random.PRNGKey(1), num=10, batch_size=6)
    expected = {"random_labels": sampling.sample(fn, params, {}, **common),
                "cycled": sampling.sample(fn, params, {}, labels=np.arange(10) % 3, **common)}
    for pid in (0, 1):
        result = json.loads((two_processes / f"result_{pid}.json").read_text())
        assert result["devices"] == 4 and result["processes"] == 2
        with np.load(two_processes / f"images_{pid}.npz") as got:
            for name, want in expected.items():
                assert got[name].shape == (10, 4, 4, 3)
                np.testing.assert_array_equal(got[name], want)


def test_a_preemption_notice_on_one_host_stops_every_host_after_one_iteration(two_processes):
    results = [json.loads((two_processes / f"result_{pid}.json").read_text()) for pid in (0, 1)]
    assert all(r["synced"] for r in results)
    stopped = {r["stopped"] for r in results}
    assert len(stopped) == 1 and None not in stopped, results
    assert stopped.pop() > 3


def test_distributed_settings_that_cannot_work_say_which_field():
    cfg = ml_collections.ConfigDict(dict(distributed=False, coordinator_address=None,
                                         num_processes=None, process_id=None))
    assert distributed.initialize(cfg) is False  # not asked: nothing happens
    cfg.distributed = True
    for field, value, message in [("num_processes", 0, "num_processes=0 must be >= 1"),
                                  ("process_id", 5, "process_id=5 must be in"),
                                  ("coordinator_address", "host0", "needs a port")]:
        bad = ml_collections.ConfigDict(cfg.to_dict())
        bad.num_processes = 2
        bad[field] = value
        with pytest.raises(ConfigError, match=message):
            distributed.initialize(bad)


def test_one_process_stops_on_sigterm_and_gives_the_handler_back():
    """Without JAX's distributed runtime the request is this process's own signal."""
    before = signal.getsignal(signal.SIGTERM)
    stop = preemption.StopRequest()
    assert not stop.synced and not stop.should_stop(1)
    os.kill(os.getpid(), signal.SIGTERM)
    assert stop.should_stop(2)
    stop.restore()
    assert signal.getsignal(signal.SIGTERM) is before


# --- The trainer itself across processes ---------------------------------------------------

TINY_RUN = ("--config=configs/biggan_tiny.py", "--config.sparse.g_update_every=10",
            "--config.sparse.d_adjust_every=10", "--config.balance.window=10",
            "--config.balance.br_every=5", "--config.train.log_every=5",
            "--config.train.sample_every=10", "--config.train.ckpt_every=10",
            "--config.eval.every=10", "--config.eval.num_samples=60",
            "--config.balance.band=calibrated", f"--config.eval.cache_dir={EVAL_CACHE}",
            # How fast float differences grow (the tolerances below) depends on the rates and
            # G's density; these tolerances were measured with equal rates and d_G = 20%.
            "--config.train.lr_g=2e-4", "--config.train.lr_d=2e-4",
            "--config.sparse.density_g=0.2")


def train(workdir, iters: int, *, processes: int,
          devices: int) -> list[subprocess.CompletedProcess]:
    """`python -m adapt_jax.main` as `processes` JAX processes of `devices` CPU devices each."""
    group = ([] if processes == 1 else
             ["--config.train.distributed=True", f"--config.train.num_processes={processes}",
              f"--config.train.coordinator_address=localhost:{free_port()}"])
    cmds = [[sys.executable, "-m", "adapt_jax.main", *TINY_RUN, f"--workdir={workdir}",
             f"--config.train.num_iters={iters}", *group,
             *([f"--config.train.process_id={i}"] if processes > 1 else [])]
            for i in range(processes)]
    return run_together(cmds, cpu_env(devices), timeout=420)


def _losses(workdir) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing import event_accumulator
    from tensorboard.util import tensor_util

    acc = event_accumulator.EventAccumulator(str(workdir), size_guidance={"tensors": 0})
    acc.Reload()
    return {tag: [(e.step, float(tensor_util.make_ndarray(e.tensor_proto)))
                  for e in acc.Tensors(tag)] for tag in ("d_loss", "g_loss", "br_avg")}


def _files(workdir) -> list[str]:
    """The workdir's files, event files by count (their names hold the host and the pid)."""
    names = []
    for root, _, files in os.walk(workdir):
        for f in files:
            rel = os.path.relpath(os.path.join(root, f), workdir)
            names.append("events" if f.startswith("events.out.tfevents") else rel)
    return sorted(n for n in names if "checkpoints" not in n and not n.endswith(".lock"))


def test_two_processes_train_resume_and_match_one_process(tmp_path):
    """2 processes x 2 devices train through calibration, D decisions, samples, evals and
    checkpoints to 25, then the same command with 30 iterations resumes; 1 process x 4 devices
    run the same two commands. Both end alike, and process 1 writes nothing of its own.
    (T enters the drop-fraction schedules, so both runs extend 25 -> 30 the same way; 25 lies
    between events because no mask event fires at a run's last iteration.)"""
    pod, host = tmp_path / "pod", tmp_path / "host"
    for workdir, processes, devices in ((pod, 2, 2), (host, 1, 4)):
        train(workdir, 25, processes=processes, devices=devices)
        resumed = train(workdir, 30, processes=processes, devices=devices)
        assert all("Resumed" in r.stderr for r in resumed)

    a, b = (json.loads((w / "summary.json").read_text()) for w in (pod, host))
    assert a["iterations"] == b["iterations"] == 30
    assert [d["action"] for d in a["d_decisions"]] == [d["action"] for d in b["d_decisions"]]
    assert a["d_decisions"][0]["action"] == "calibrate" and len(a["d_decisions"]) == 2
    for key in ("density_g", "density_d"):
        assert a[key] == b[key]
    # 2x2 and 1x4 devices all-reduce in different orders, so float sums differ in the last
    # bits, and GAN training amplifies that: ~1e-6 relative at t = 5, ~5e-3 at t = 30. Same
    # decisions and densities (exact), same numbers to a tolerance that grows with t.
    np.testing.assert_allclose(a["br_avg"], b["br_avg"], rtol=2e-2)
    la, lb = _losses(pod), _losses(host)
    for tag in la:
        assert [s for s, _ in la[tag]] == [s for s, _ in lb[tag]] and la[tag]
        np.testing.assert_allclose(la[tag][0][1], lb[tag][0][1], rtol=1e-5, err_msg=tag)
        np.testing.assert_allclose([v for _, v in la[tag]], [v for _, v in lb[tag]],
                                   rtol=2e-2, atol=1e-4, err_msg=tag)
    history = [s["eval"]["history"] for s in (a, b)]
    assert [t for t, _ in history[0]] == [t for t, _ in history[1]] == [10, 20, 25, 30]
    name = a["eval"]["name"]
    np.testing.assert_allclose(*[[scores[name] for _, scores in h] for h in history], rtol=5e-2)
    # One writer: the same files as the one-process run (two event streams in each), so
    # process 1 wrote no events, summary, plots or samples of its own.
    assert _files(pod) == _files(host)
