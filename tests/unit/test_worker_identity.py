"""A worker's identity names one run of its main process: a worker restarted in place (a
container's main process gets the same pid every time) is not taken for the one that died."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tasks import heartbeat

ROOT = Path(__file__).resolve().parents[2]


def test_two_runs_of_a_main_process_with_the_same_pid_have_different_identities(monkeypatch):
    monkeypatch.setattr(heartbeat, "start_time", lambda pid: "1000")
    first = heartbeat.identity_of_main_process("worker1@host", 7)
    monkeypatch.setattr(heartbeat, "start_time", lambda pid: "1450")
    again = heartbeat.identity_of_main_process("worker1@host", 7)
    assert first == "worker1@host:7:1000" and again == "worker1@host:7:1450"


def test_a_pool_process_derives_its_main_process_identity():
    """A pool process names its worker by its parent's pid and start time."""
    ours = heartbeat.identity_of_main_process("worker1@host", os.getpid())
    assert ours == heartbeat.identity_of_main_process("worker1@host", os.getpid())
    reader, writer = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child
        os.write(writer, heartbeat.identity_of_main_process("worker1@host", os.getppid()).encode())
        os._exit(0)
    os.close(writer)
    assert os.read(reader, 1000).decode() == ours
    os.close(reader)
    os.waitpid(child, 0)
    assert heartbeat.start_time(os.getpid()).isdigit()


def test_a_process_started_again_with_the_same_pid_gets_another_identity():
    """As in a container restarted in place: pid 1 of a new pid namespace, twice."""
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip("no unshare(1) here")
    code = "import os; from tasks import heartbeat; "
    code += "print(heartbeat.identity_of_main_process('worker@c', os.getpid()))"
    argv = [unshare, "--user", "--map-root-user", "--pid", "--fork"]
    argv += ["--mount-proc", sys.executable, "-c", code]
    seen = []
    for _ in range(2):
        done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            pytest.skip(f"no pid namespace here: {done.stderr[-300:]}")
        seen.append(done.stdout.strip().splitlines()[-1])
    assert [identity.split(":")[:2] for identity in seen] == [["worker@c", "1"]] * 2
    assert seen[0] != seen[1]
