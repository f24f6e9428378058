"""Jobs that run a while share CPU by group (one API key's jobs weigh as one), not by job."""

import threading
import time
from pathlib import Path

import psutil
import pytest

from sandbox import Job, Limits, process, run
from sandbox.confine import GROUP_PREFIX, LONG_JOB_NICE, Confinement, group_dir_name
from sandbox.pool import GROUP_AFTER_SECONDS, FreshProcesses, Grouped, Prespawned, later

LIMITS = Limits()
SPIN = "export function run() { while (true) {} }"
QUICK = "export function run() { return 1 }"

v1_cpu = pytest.mark.skipif(
    not (process.confinement().cgroup_version == 1 and "cpu" in process.confinement().cgroup_bases),
    reason="needs a writable cgroup v1 cpu hierarchy (root on a v1 or hybrid host)",
)


def cpu_cgroup(pid: int) -> str:
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if "cpu" in controllers.split(","):
            return path
    return ""


def cpu_seconds(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def start(
    script: str, group: str, timeout: int, pids: list[int], walls: Confinement | None = None
) -> threading.Thread:
    source = Grouped(FreshProcesses(LIMITS, walls), group)
    job = Job.create(script, "run", {}, timeout, LIMITS)
    thread = threading.Thread(target=run, args=(job, LIMITS, None, source, pids.append))
    thread.start()
    return thread


def wait_for(condition, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition never held"
        time.sleep(0.01)


@v1_cpu
def test_a_job_running_a_while_moves_into_its_groups_cpu_group_and_keeps_its_quota():
    pids: list[int] = []
    thread = start(SPIN, "alice", 1500, pids)
    wait_for(lambda: pids and group_dir_name("alice") in cpu_cgroup(pids[0]))
    group = Path("/sys/fs/cgroup/cpu") / cpu_cgroup(pids[0]).lstrip("/")
    assert group.parent.name == group_dir_name("alice")
    assert (group / "cpu.cfs_quota_us").read_text().strip() == "100000"  # still one core
    thread.join()
    assert not list(group.parent.glob("job-*")), "the job's CPU group outlived it"


def test_a_job_that_ends_before_its_move_is_due_is_never_moved(monkeypatch):
    moved = []
    monkeypatch.setattr(process.DenoProcess, "share_cpu_with", lambda self, g: moved.append(g))
    pool = Prespawned(LIMITS, 1)  # as in a worker: the process is started before the job
    try:
        for _ in range(3):
            wait_for(lambda: pool.idle == 1)
            source = Grouped(pool, "alice", after=0.5)
            outcome = run(Job.create(QUICK, "run", {}), LIMITS, None, source)
            assert outcome.ok, outcome
    finally:
        pool.close()
    time.sleep(1)
    assert moved == []
    assert GROUP_AFTER_SECONDS <= 0.5  # a trivial job takes a few ms


@v1_cpu
def test_one_groups_many_spinners_weigh_as_much_as_another_groups_one():
    """Four infinite loops of one key against one of another: with a weight per job the
    lone loop would get a fifth of the CPU the jobs get; with a weight per key, half."""
    many: list[int] = []
    one: list[int] = []
    threads = [start(SPIN, "many", 2500, many) for _ in range(4)]
    threads.append(start(SPIN, "one", 2500, one))
    wait_for(lambda: len(many) == 4 and len(one) == 1)
    wait_for(lambda: all(GROUP_PREFIX in cpu_cgroup(pid) for pid in [*many, *one]))
    before = {pid: cpu_seconds(pid) for pid in [*many, *one]}
    time.sleep(1.5)
    used = {pid: cpu_seconds(pid) - seconds for pid, seconds in before.items()}
    for thread in threads:
        thread.join()
    lone, crowd = used[one[0]], sum(used[pid] for pid in many)
    assert lone >= 0.6 * crowd, f"lone loop {lone:.2f} s of CPU, four loops {crowd:.2f} s"


def test_without_cgroups_a_job_running_a_while_gets_a_lower_priority():
    pids: list[int] = []
    thread = start(SPIN, "alice", 1000, pids, walls=Confinement())  # no cgroups, netns or user

    def niced() -> bool:
        threads = psutil.Process(pids[0]).threads() if pids else []
        nice = [psutil.Process(thread.id).nice() for thread in threads]
        return bool(nice) and all(value == LONG_JOB_NICE for value in nice)

    wait_for(niced)
    thread.join()


def test_a_delayed_call_runs_when_due_unless_cancelled_and_cancel_waits_for_a_running_one():
    ran: list[str] = []
    started, release = threading.Event(), threading.Event()

    def slow() -> None:
        started.set()
        release.wait(5)
        ran.append("slow")

    scheduler = later()
    scheduler.cancel(scheduler.call(0.05, lambda: ran.append("cancelled")))
    token = scheduler.call(0.01, slow)
    assert started.wait(5)
    threading.Timer(0.2, release.set).start()
    begun = time.monotonic()
    scheduler.cancel(token)  # already running: returns once it has returned
    assert time.monotonic() - begun >= 0.15
    time.sleep(0.1)
    assert ran == ["slow"]
