"""The OS walls around a job's process, checked from outside while it runs.

Which walls exist depends on the host (cgroups writable or not, root or not): each test
checks the wall in force, or its fallback where it is missing. tests/sandbox/
test_without_cgroups.py runs this file again without writable cgroups, and as a user
other than root.
"""

import os
import queue
import resource
import socket
import threading
import time
from pathlib import Path

import pytest
from security.attacks import ATTACKS, verdict
from stacks import SPIN

from sandbox import Job, Limits, run
from sandbox.limits import MIB
from sandbox.process import RLIMIT_DATA_HEADROOM_MB, RLIMIT_DATA_WORKERS, confinement

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


def test_job_process_runs_as_nobody_when_the_worker_is_root():
    seen = {}
    while_running(
        SPIN, lambda pid: seen.update(uid=status_field(pid, "Uid"), gid=status_field(pid, "Gid"))
    )
    if WALLS.user is not None:  # root: dropped to nobody
        uid, gid = WALLS.user
        assert uid != 0
    else:  # not root (or nothing to drop to): the worker's own user, never more
        uid, gid = os.geteuid(), os.getegid()
    assert seen["uid"].split() == [str(uid)] * 4
    assert seen["gid"].split() == [str(gid)] * 4


def test_job_process_cannot_reach_the_network():
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    connect = f"""export async function run() {{
      await new Promise(r => setTimeout(r, 600)); // inspected meanwhile
      await Deno.connect({{ hostname: '127.0.0.1', port: {port} }}); return 'connected' }}"""
    seen = {}

    def inspect(pid: int) -> None:
        seen["ns"] = os.readlink(f"/proc/{pid}/ns/net")
        seen["interfaces"] = [
            line.split(":")[0].strip()
            for line in Path(f"/proc/{pid}/net/dev").read_text().splitlines()[2:]
        ]

    with listener:
        outcome = while_running(connect, inspect)
    # Deno's permissions refuse first, in every case
    assert outcome.error.code == "RUNTIME_ERROR"
    assert "Requires net access" in outcome.error.message
    if WALLS.network_namespace:  # root: and behind them, an empty namespace of its own
        assert seen["ns"] != os.readlink("/proc/self/ns/net")
        assert seen["interfaces"] == ["lo"]
    else:
        assert seen["ns"] == os.readlink("/proc/self/ns/net")


def test_job_process_memory_walls_are_the_ones_described():
    """In cgroups of its own (removed afterwards) where they are writable; else under
    RLIMIT_DATA, in the worker's own cgroups."""

    def groups() -> set[Path]:
        return {
            p for base in WALLS.cgroup_bases.values() for p in base.glob(f"job-{os.getpid()}-*")
        }

    def data_limit(pid: int) -> str:
        for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
            if line.startswith("Max data size"):
                return line.split()[3]
        raise AssertionError(f"no data limit in /proc/{pid}/limits")

    seen = {}
    while_running(
        SPIN,
        lambda pid: seen.update(
            groups=Path(f"/proc/{pid}/cgroup").read_text(), during=groups(), data=data_limit(pid)
        ),
    )
    if WALLS.cgroup_version is not None:
        assert f"sandbox-jobs/job-{os.getpid()}-" in seen["groups"]
        assert len(seen["during"]) == len(WALLS.cgroup_bases)
        assert groups() == set()
    else:
        assert "sandbox-jobs" not in seen["groups"]
        assert seen["groups"] == Path("/proc/self/cgroup").read_text()
        expected = (Limits().max_memory_mb + RLIMIT_DATA_HEADROOM_MB) * MIB
        assert seen["data"] == str(expected)


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


def test_workers_start_under_the_memory_walls():
    """Each Worker's isolate reserves ~525 MiB of address space: RLIMIT_DATA, where it is
    the backstop, leaves room for RLIMIT_DATA_WORKERS of them."""
    worker = "'data:application/javascript,' + encodeURIComponent('postMessage(new Uint8Array(1 << 20).fill(1).length)')"
    source = f"""export async function run() {{
      const ws = Array.from({{ length: {RLIMIT_DATA_WORKERS} }}, () => new Worker({worker}, {{ type: 'module' }}));
      const sizes = await Promise.all(ws.map(w => new Promise(r => (w.onmessage = e => r(e.data)))));
      return sizes.length }}"""
    assert run(Job.create(source, "run", {}, 20_000)).result == RLIMIT_DATA_WORKERS


# The attacks that differ with the walls (memory outside the V8 heap, Workers, one core
# shared) straight through the sandbox: the API adds nothing here, and costs a whole stack.
# V8's heap cap answers heap_bomb and microtask_flood the same way everywhere.
WALL_ATTACK_NAMES = {
    "buffer_bomb",
    "wasm_memory_bomb",
    "worker_bomb",
    "worker_spawn_storm",
    "spinning_workers",
    "log_flood",
}
WALL_ATTACKS = [attack for attack in ATTACKS if attack.name in WALL_ATTACK_NAMES]


@pytest.mark.parametrize("attack", WALL_ATTACKS, ids=[a.name for a in WALL_ATTACKS])
def test_attack_on_the_walls_has_its_outcome(attack):
    body = run(Job.create(attack.script, "run", {}, attack.timeout)).to_dict()
    assert verdict(attack, body), f"{attack.name}: expected {attack.expect}, got {str(body)[:300]}"


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
    assert set(described) == {"memory", "cpu", "network", "user", "processes", "files"}
    if WALLS.cgroup_version is not None:
        assert described["memory"].startswith(f"cgroup v{WALLS.cgroup_version} (")
        assert "RLIMIT_DATA" not in described["memory"]
    else:
        assert described["memory"].startswith("RSS watchdog + RLIMIT_DATA")
    if WALLS.cpu_quota:
        assert described["cpu"] == "cgroup cpu quota"
    else:
        assert described["cpu"] == "pinned to one core"
    network = "empty network namespace" if WALLS.network_namespace else "Deno permissions only"
    assert described["network"] == network
    if WALLS.namespaces:
        assert described["processes"] == "PID namespace of its own, /proc hidden"
        assert described["user"].endswith(
            " in a user namespace of its own"
            + ("" if WALLS.user else " (the worker's: no user to drop to)")
        )
    else:
        assert described["processes"].startswith("sees the host's processes")
    if WALLS.landlock:
        assert (
            described["files"]
            == f"writes only in its own directory (Landlock ABI {WALLS.landlock})"
        )
    else:
        assert described["files"] == "writes what its user may (no Landlock)"
    assert described["user"].startswith(f"uid {WALLS.user[0] if WALLS.user else os.geteuid()}")
