"""The OS walls around a job's process, checked from outside while it runs."""

import os
import queue
import resource
import threading
import time
from pathlib import Path

import pytest
from stacks import SPIN

from sandbox import Job, Limits, run
from sandbox.process import confinement

WALLS = confinement()


def while_running(source: str, inspect, timeout: int = 3000, limits: Limits = Limits()):
    """Run `source` in a thread; call inspect(pid) on the job's own process (as `run`
    reports it) once it runs; return the outcome."""
    pids: queue.Queue[int] = queue.Queue()
    outcome = {}
    job = Job.create(source, "run", {}, timeout)
    worker = threading.Thread(
        target=lambda: outcome.setdefault("o", run(job, limits, on_process=pids.put))
    )
    worker.start()
    try:
        pid = pids.get(timeout=10)
        time.sleep(0.2)  # past the harness's start-up, into the job
        inspect(pid)
    finally:
        worker.join()
    return outcome["o"]


def status_field(pid: int, name: str) -> str:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(name + ":"):
            return line.split(":", 1)[1].strip()
    raise AssertionError(f"no {name} in /proc/{pid}/status")


@pytest.mark.skipif(WALLS.user is None, reason="worker is not root: no user to drop to")
def test_job_process_runs_as_nobody():
    seen = {}
    while_running(
        SPIN, lambda pid: seen.update(uid=status_field(pid, "Uid"), gid=status_field(pid, "Gid"))
    )
    assert seen["uid"].split() == [str(WALLS.user[0])] * 4
    assert seen["gid"].split() == [str(WALLS.user[1])] * 4


@pytest.mark.skipif(not WALLS.network_namespace, reason="network namespaces are not available here")
def test_job_process_has_an_empty_network_namespace_of_its_own():
    seen = {}

    def inspect(pid: int) -> None:
        seen["ns"] = os.readlink(f"/proc/{pid}/ns/net")
        seen["interfaces"] = [
            line.split(":")[0].strip()
            for line in Path(f"/proc/{pid}/net/dev").read_text().splitlines()[2:]
        ]

    while_running(SPIN, inspect)
    assert seen["ns"] != os.readlink("/proc/self/ns/net")
    assert seen["interfaces"] == ["lo"]


@pytest.mark.skipif(WALLS.cgroup_version is None, reason="no writable cgroup hierarchy here")
def test_job_process_is_in_cgroups_of_its_own_that_are_removed_afterwards():
    def groups() -> set[Path]:
        return {
            p for base in WALLS.cgroup_bases.values() for p in base.glob(f"job-{os.getpid()}-*")
        }

    seen = {}
    while_running(
        SPIN,
        lambda pid: seen.update(groups=Path(f"/proc/{pid}/cgroup").read_text(), during=groups()),
    )
    assert f"sandbox-jobs/job-{os.getpid()}-" in seen["groups"]
    assert len(seen["during"]) == len(WALLS.cgroup_bases)
    assert groups() == set()


def test_workers_spinning_in_several_threads_get_at_most_one_core():
    worker = "'data:application/javascript,' + encodeURIComponent('const e = Date.now() + 1500; while (Date.now() < e) {} postMessage(1)')"
    source = f"""export async function run() {{
      const ws = [0, 1, 2, 3].map(() => new Worker({worker}, {{ type: 'module' }}));
      await Promise.all(ws.map(w => new Promise(r => (w.onmessage = r)))); return 'done' }}"""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    outcome = run(Job.create(source, "run", {}, 20_000))
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    assert outcome.result == "done"
    assert cpu < wall * 1.25, f"{cpu:.2f} s of CPU in {wall:.2f} s of wall time"


BUFFERS_300_MB = "export function run() { const a = []; for (let i = 0; i < 300; i++) a.push(new Uint8Array(1 << 20).fill(1)); return a.length }"


def test_default_memory_limit_stops_a_300_mb_job():
    assert run(Job.create(BUFFERS_300_MB, "run", {}, 20_000)).error.code == "MEMORY_LIMIT_ERROR"


def test_a_job_may_ask_for_more_memory_up_to_the_maximum():
    limits = Limits(max_memory_mb=512)
    job = Job.create(BUFFERS_300_MB, "run", {}, 20_000, limits, memory_mb=450)
    assert run(job, limits).result == 300


def test_memory_request_above_the_maximum_is_capped():
    assert (
        Job.create("x", "run", {}, None, Limits(max_memory_mb=512), memory_mb=4096).memory_mb == 512
    )


def test_confinement_in_force_is_described():
    described = WALLS.describe()
    assert set(described) == {"memory", "cpu", "network", "user"}
    assert ("cgroup" in described["memory"]) == (WALLS.cgroup_version is not None)
