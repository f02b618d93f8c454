"""One run per workdir: a second run on the same workdir is refused; a dead one never blocks."""

import os
import subprocess
import sys
import time

import pytest

from adapt_jax import paths
from adapt_jax.training import workdir_lock

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Stands in for a training run: holds the workdir until told to finish, then writes its result.
RUN = """
import os, sys, time
from adapt_jax.training import workdir_lock
from adapt_jax.config_base import ConfigError
workdir, name = sys.argv[1], sys.argv[2]
try:
    with workdir_lock.hold(workdir, process_index=0):
        open(os.path.join(workdir, 'holding_' + name), 'w').close()
        while not os.path.exists(os.path.join(workdir, 'finish')):
            time.sleep(0.05)
        with open(os.path.join(workdir, 'result_' + name), 'w') as f:
            f.write('complete')
except ConfigError as e:  # what the CLI does with it
    print(f'error: {e}', file=sys.stderr)
    sys.exit(2)
"""


def start(workdir, name: str) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", RUN, str(workdir), name], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (workdir / f"holding_{name}").exists():
        assert proc.poll() is None, proc.communicate()[1]
        assert time.time() < deadline, "the first run never took the lock"
        time.sleep(0.05)
    return proc


def test_a_second_run_is_refused_and_the_first_finishes_unharmed(tmp_path):
    first = start(tmp_path, "first")
    second = subprocess.run([sys.executable, "-c", RUN, str(tmp_path), "second"], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert second.returncode == 2
    lines = second.stderr.strip().splitlines()
    assert len(lines) == 1 and "in use by another run" in lines[0], second.stderr
    assert f"pid {first.pid}" in lines[0]  # names the holder
    assert not (tmp_path / "holding_second").exists()
    (tmp_path / "finish").touch()
    assert first.wait(timeout=60) == 0
    assert (tmp_path / "result_first").read_text() == "complete"


def test_a_killed_run_does_not_leave_the_workdir_locked(tmp_path):
    first = start(tmp_path, "first")
    first.kill()  # SIGKILL: no cleanup code runs
    first.wait()
    (tmp_path / "finish").touch()
    second = subprocess.run([sys.executable, "-c", RUN, str(tmp_path), "second"], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert second.returncode == 0, second.stderr
    assert (tmp_path / "result_second").read_text() == "complete"


def test_only_process_zero_takes_the_lock(tmp_path):
    with workdir_lock.hold(str(tmp_path), process_index=0) as lock:
        assert lock.held
        with workdir_lock.hold(str(tmp_path), process_index=1) as other:
            assert not other.held  # other hosts of the same run do not compete
        with pytest.raises(workdir_lock.WorkdirBusy):
            workdir_lock.hold(str(tmp_path), process_index=0).acquire()
    with workdir_lock.hold(str(tmp_path), process_index=0) as again:  # released on exit
        assert again.held


class FakeBucket:
    """etils.epath stand-in for a gs:// workdir (objects in a dict)."""

    objects: dict = {}

    def __init__(self, path):
        self.path = str(path)

    def exists(self):
        return self.path in FakeBucket.objects

    def mkdir(self, parents, exist_ok):
        pass

    def write_bytes(self, data):
        FakeBucket.objects[self.path] = data

    def read_text(self):
        return FakeBucket.objects[self.path].decode()


def test_bucket_workdirs_hold_a_lease_that_expires(monkeypatch):
    monkeypatch.setattr(paths, "_epath", FakeBucket)
    FakeBucket.objects = {}
    run = "gs://bucket/runs/a"
    first = workdir_lock.WorkdirLock(run, ttl=60).acquire()
    with pytest.raises(workdir_lock.WorkdirBusy, match="in use by another run"):
        workdir_lock.WorkdirLock(run, ttl=60).acquire()
    now = time.time()
    monkeypatch.setattr(time, "time", lambda: now + 30)
    first.refresh()  # a quarter of the ttl has passed: the heartbeat moves
    monkeypatch.setattr(time, "time", lambda: now + 80)
    with pytest.raises(workdir_lock.WorkdirBusy):
        workdir_lock.WorkdirLock(run, ttl=60).acquire()  # 50 s since the heartbeat
    monkeypatch.setattr(time, "time", lambda: now + 100)
    taken = workdir_lock.WorkdirLock(run, ttl=60).acquire()  # the first run died: taken over
    assert taken.held
    taken.release()
    assert workdir_lock.WorkdirLock(run, ttl=60).acquire().held
